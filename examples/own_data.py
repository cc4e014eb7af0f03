import pandas as pd
import torch
import graphmeta as gm
table = pd.read_csv("examples/data/rand_hie_sample.csv")  # a row per person-year; "plan" names its task
family = gm.DataFrameFamily(table, task_column="plan", features={"visits": ["incentive", "deductible"]},
                            test_tasks=["coins95"], val_tasks=["coins50"])  # graph: learned from the training plans
print(family.graph.summary())
torch.manual_seed(0)  # the model's initial weights: runs repeat exactly
model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1)
trainer = gm.Trainer(model, family, steps=200, shots=20, query_shots=30, outer_lr=3e-3, name="own-data", progress=False)
trainer.fit(resume=True)
print(trainer.evaluate(num_tasks=50).table())  # with a pooled model and learners trained from scratch
new_plan = table[table["plan"] == "coins95"]  # the held-out plan: adapt to 20 of its rows, score the rest
adapted = model.adapt(family.batch_from_frames(new_plan.iloc[:20]))
print(family.errors(adapted, family.batch_from_frames(new_plan.iloc[:20], new_plan.iloc[20:])))  # in its units
