"""Fit a Bayesian network for a new site from 20 records, after meta-learning from 200 related sites.

    python examples/bayesnet_new_site.py                 # asia, about half a minute
    python examples/bayesnet_new_site.py --network alarm # a few minutes

The sites come from the ``<network>-latent`` card: every site's CPDs move with one shared
2-d factor. graphmeta hands back an ordinary pgmpy model; pgmpy's BDeu estimate from the same
20 rows is the comparison.
"""

import argparse
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)  # pgmpy's deprecation notices

import torch
from pgmpy.inference import VariableElimination
from pgmpy.models import DiscreteBayesianNetwork
from pgmpy.parameter_estimator import DiscreteBayesianEstimator

import graphmeta as gm
from graphmeta.bayesnet import BayesNetMetaLearner, NetworkStructure

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--network", default="asia", choices=("asia", "child", "alarm"))
args = parser.parse_args()
torch.set_num_threads(1)

family = gm.load_family(f"{args.network}-latent")
related_sites = family.sample_dataframes(200, 500, "train", seed=0)  # one DataFrame per site
new_site = family.sample_dataframes(1, 520, "test", seed=1)[0]
support, query = new_site.iloc[:20], new_site.iloc[20:]

learner = BayesNetMetaLearner(args.network)  # message passing on; CPDs of the structure are ignored
summary = learner.meta_fit(related_sites, shots=len(support), progress=False)
print(f"meta-fitted in {summary['steps']} steps ({summary['wall_time_s']:.0f} s)")
model = learner.adapt(support)  # a pgmpy DiscreteBayesianNetwork
assert model.check_model()

bdeu = DiscreteBayesianNetwork(model.edges())
bdeu.add_nodes_from(model.nodes())
bdeu = bdeu.fit(support, estimator=DiscreteBayesianEstimator(state_names=learner.structure.states))
structure = NetworkStructure.from_pgmpy(args.network)
rows = structure.encode([query])
for name, fitted in (("graphmeta", model), ("pgmpy BDeu", bdeu)):
    tables = structure.pack_network(fitted)[None]  # one site
    print(f"{name:>10}: query log-likelihood {structure.log_likelihood(tables, rows).mean():.3f} nats/row")

variable, evidence = next((v, {p: new_site[p].iloc[0] for p in model.get_parents(v)})
                          for v in model.nodes() if model.get_parents(v))
print(f"P({variable} | {evidence}) =")
print(VariableElimination(model).query([variable], evidence=evidence, show_progress=False))
