"""Algorithms: ask/tell searches built on :class:`qd.archive.Archive`.

``ALGORITHMS`` maps a CLI name to a :class:`~qd.algorithms.base.Variant` (config dataclass,
algorithm class, the defaults the variant overrides). Every algorithm follows the protocol of
:class:`~qd.algorithms.base.Algorithm` (``ask``, ``tell``, ``archives``, ``state_dict``,
``load_state_dict``; :class:`~qd.algorithms.base.Learner` for those that step the env
themselves).
"""

from __future__ import annotations

from qd.algorithms.base import Algorithm, Learner, Variant
from qd.algorithms.baselines import CMAME, CMAMEConfig, MapElites, MEConfig
from qd.algorithms.dvd import DvDES, DvDESConfig
from qd.algorithms.dvd_td3 import DvDTD3, DvDTD3Config
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.algorithms.nslc import NSGA2, NSLC, NSGA2Config, NSLCConfig
from qd.algorithms.reward_search import CMAES, CMAESConfig, RandomConfig, RandomSearch
from qd.algorithms.serene import Serene, SereneConfig
from qd.algorithms.stax import Stax, StaxConfig
from qd.algorithms.taxons import Taxons, TaxonsConfig
from qd.policies import BatchedMLP, SereneMLP, make_policy, serene_sizes

ALGORITHMS: dict[str, Variant] = {
    "ns": Variant(NSConfig, NoveltySearch, summary="Novelty Search"),
    "serene": Variant(SereneConfig, Serene, summary="NS + reward emitters + meta-scheduler"),
    "me": Variant(MEConfig, MapElites, summary="MAP-Elites (pyribs)"),
    "cma-me": Variant(CMAMEConfig, CMAME, summary="CMA-ME (pyribs)"),
    "cma-es": Variant(CMAESConfig, CMAES, summary="CMA-ES on reward (pyribs)"),
    "random": Variant(RandomConfig, RandomSearch, summary="random genomes"),
    "nslc": Variant(NSLCConfig, NSLC, summary="NS with local competition"),
    "nsga2": Variant(NSGA2Config, NSGA2, summary="NSGA-II on (novelty, reward)"),
    "dvd-es": Variant(DvDESConfig, DvDES, summary="DvD-ES"),
    "dvd-td3": Variant(DvDTD3Config, DvDTD3, summary="DvD-TD3"),
    "taxons": Variant(TaxonsConfig, Taxons, summary="TAXONS: NS in a learned AE space"),
    "taxo-n": Variant(
        TaxonsConfig, Taxons, {"selection": "novelty"}, "TAXO-N: TAXONS selecting by novelty"
    ),
    "taxo-s": Variant(
        TaxonsConfig, Taxons, {"selection": "surprise"}, "TAXO-S: TAXONS selecting by surprise"
    ),
    "nt": Variant(
        TaxonsConfig,
        Taxons,
        {"train_ae": False, "selection": "novelty"},
        "NT: TAXONS, AE never trained, novelty selection (no surprise: as the authors)",
    ),
    "taxons-p": Variant(
        TaxonsConfig, Taxons, {"selection": "pareto"}, "TAXONS-P: fronts on novelty, surprise"
    ),
    "stax": Variant(StaxConfig, Stax, summary="STAX: SERENE in a learned AE space"),
    "stax-p": Variant(
        StaxConfig, Stax, {"selection": "pareto"}, "STAX-P: fronts on novelty, surprise"
    ),
    "stax-nt": Variant(
        StaxConfig,
        Stax,
        {"train_ae": False, "selection": "novelty"},
        "STAX-NT: AE never trained, novelty selection (no surprise: as the authors)",
    ),
}


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Learner",
    "Variant",
    "algorithm_names",
    "lookup",
    "policy_for",
]


def policy_for(algorithm: str, env_spec, hidden: list[int] | None = None) -> BatchedMLP:
    """The policy a run of ``algorithm`` on an env with ``env_spec`` evaluates.

    SERENE-family MLPs with the papers' sizes by default; an algorithm class may instead name
    ``policy_kind`` (see :data:`qd.policies.POLICIES`), ``policy_hidden`` and
    ``policy_options`` (DvD: tanh, 16 x 16, no output bias). ``hidden`` overrides the hidden
    layers (a run's ``policy_hidden``).
    """
    algo_cls = lookup(algorithm).algorithm
    kind = algo_cls.policy_kind
    obs, act = env_spec.obs_size, env_spec.action_size
    if kind == "serene":
        return SereneMLP(serene_sizes(obs, act, hidden, env=env_spec.name))
    hidden = list(hidden) if hidden is not None else list(algo_cls.policy_hidden)
    return make_policy(kind, (obs, *hidden, act), **algo_cls.policy_options)


def algorithm_names() -> list[str]:
    """Names of the registry (``qd run`` also accepts ``evotorch:<SEARCHER>``)."""
    return sorted(ALGORITHMS)


def lookup(name: str) -> Variant:
    """The registry entry of ``name`` (or of the EvoTorch searcher ``evotorch:<SEARCHER>``,
    :mod:`qd.integrations.evotorch_search`), with an error listing the known ones."""
    if isinstance(name, str) and name.startswith("evotorch:"):
        from qd.integrations.evotorch_search import variant

        return variant(name.split(":", 1)[1])
    if name not in ALGORITHMS:
        raise KeyError(
            f"unknown algorithm {name!r}; known algorithms: {', '.join(algorithm_names())}, "
            "evotorch:<PGPE|SNES|XNES|CEM|CMAES|GA|MAPElites>"
        )
    return ALGORITHMS[name]
