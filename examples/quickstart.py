"""Quickstart: define a task graph and its tasks, meta-train, adapt to a new task from 5 examples, predict, draw."""

import torch

import graphmeta as gm

# Two subtasks: "wave" reads x; "offset" reads nothing of its own, only its parent's value.
graph = gm.TaskGraph("waves").add_subtask("wave", in_dim=1).add_subtask("offset").add_dependency("wave", "offset")


class Waves:
    """Task t: wave = A_t sin(x - p_t), offset = 2 * wave + A_t. Any object with graph and sample() will do."""

    graph = graph

    def sample(self, num_tasks, shots, query, split="train", seed=0):
        generator = torch.Generator().manual_seed(1_000_003 * ("train", "val", "test").index(split) + seed)
        amplitude, phase = 1 + 4 * torch.rand(2, num_tasks, 1, 1, generator=generator)
        x = 10 * torch.rand(num_tasks, shots + query, 1, generator=generator) - 5
        wave = amplitude * torch.sin(x - phase)
        data = {"wave": (x, wave), "offset": 2 * wave + amplitude}
        part = lambda rows: {"wave": (x[:, rows], wave[:, rows]), "offset": data["offset"][:, rows]}  # noqa: E731
        return gm.TaskBatch.from_tensors(graph, part(slice(0, shots)), part(slice(shots, None)))


model = gm.GraphMetaLearner(graph, inner_steps=3, inner_lr=0.02)
trainer = gm.Trainer(model, Waves(), steps=400, shots=5, val_every=100, name="quickstart")
trainer.fit(resume=True)  # runs/quickstart/: metrics and checkpoints; a rerun reloads it
print(trainer.evaluate(num_tasks=50, ablation=False).table())

task = Waves().sample(1, shots=5, query=20, split="test", seed=7)  # a new task: 5 examples of each node
adapted = model.adapt(task, steps=10)
x = torch.linspace(-5, 5, 5).unsqueeze(-1)
prediction = adapted.predict({"wave": x})  # "offset" gets the predicted wave as its parent's value
print("predicted offset at x = -5, -2.5, 0, 2.5, 5:", [f"{v:.2f}" for v in prediction["offset"].squeeze(-1).tolist()])

errors = adapted.evaluate(task)["loss"][0]
gm.draw(graph, "runs/quickstart/quickstart.png", metrics=dict(zip(graph.names, errors.tolist())),
        metric_name="query loss after adaptation")
