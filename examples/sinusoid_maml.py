"""MAML on sinusoid regression (Finn et al., 2017, section 5.1) with graphmeta's Trainer.

The sinusoid card is a one-node graph, so this is plain MAML: one inner SGD step with
``alpha = 0.01`` during meta-training and ten at test time, K support points, meta-batches of
25 tasks, Adam with rate 1e-3 (the paper trains 70 000 steps). Writes ``runs/sinusoid-maml-<K>shot/``
and, like the paper's Figure 2, one test task: the truth, the K support points, and the
predictions after 0, 1 and 10 inner steps.

    python examples/sinusoid_maml.py --steps 5000 --shots 10
"""

import argparse

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import graphmeta as gm
from graphmeta.train.figures import plot_run_figures

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=5000, help="meta-training steps (default 5000)")
parser.add_argument("--shots", type=int, default=10, help="support points per task, K (default 10)")
args = parser.parse_args()

family = gm.load_family("sinusoid")
torch.manual_seed(0)
model = gm.GraphMetaLearner(family.graph, algorithm="maml", inner_steps=1, inner_lr=0.01, message_passing=False)
trainer = gm.Trainer(model, family, steps=args.steps, meta_batch_size=25, shots=args.shots, query_shots=10,
                     outer_lr=1e-3, val_every=250, val_tasks=100, checkpoint_every=250,
                     name=f"sinusoid-maml-{args.shots}shot")
trainer.fit(resume=True)  # a rerun continues (or reloads) the run
report = trainer.evaluate(num_tasks=200, adapt_steps=10)
print(report.table())
plot_run_figures(trainer.run, report)  # curves.png and the per-node pictures

task = family.sample(1, shots=args.shots, query=1, split="test", seed=0)
truth = family.task_params(1, split="test", seed=0)
x = torch.linspace(-5, 5, 200).unsqueeze(-1)
figure = Figure(figsize=(6.4, 4))
FigureCanvasAgg(figure)
ax = figure.add_subplot()
ax.plot(x, truth["amplitude"][0] * torch.sin(x - truth["phase"][0]), color="black", label="ground truth")
for steps, style in ((0, ":"), (1, "--"), (10, "-")):
    ax.plot(x, model.adapt(task, steps=steps).predict({"sine": x})["sine"], style, label=f"after {steps} steps")
ax.plot(task.support.features[0], task.support.values[0], "^", color="black", label=f"{args.shots} support points")
ax.set_xlabel("x")
ax.set_title(f"MAML, one test task, {args.steps} meta-training steps")
ax.legend(fontsize="small")
path = trainer.run.figures / "sinusoid-task.png"
figure.savefig(path, dpi=120)
print(f"\nwrote {path} and {trainer.run.figures}/curves.png")
