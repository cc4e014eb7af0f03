import torch
import graphmeta as gm
from graphmeta.train.figures import plot_run_figures

torch.manual_seed(0)                                         # the model's initial weights: runs repeat exactly
family = gm.load_family("compositional-dag", num_nodes=16)   # 16 regression subtasks sharing a task latent
print(family.graph.summary())                                # or build your own: gm.TaskGraph().add_subtask(...)

model = gm.GraphMetaLearner(family.graph, algorithm="maml", inner_steps=1, inner_lr=0.1)
trainer = gm.Trainer(model, family, steps=200, shots=5, query_shots=15, name="example", progress=False)
trainer.fit(resume=True)                                     # runs/example/: metrics.jsonl, checkpoints
report = trainer.evaluate(num_tasks=100)                     # vs no adaptation, from scratch, no message passing
print(report.table())
plot_run_figures(trainer.run, report)                        # runs/example/figures/: curves, per-node graphs

task = family.sample(1, shots=5, query=20, split="test", seed=0)
adapted = model.adapt(task, steps=5)                         # every node adapts, messages pass along the graph
loss = adapted.evaluate(task)["loss"][0]                     # per-node query loss, graph.names order
gm.draw(family.graph, "runs/example/task.png", metrics=dict(zip(family.graph.names, loss.tolist())),
        metric_name="query loss")
