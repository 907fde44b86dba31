"""Algorithms: ask/tell searches built on :class:`qd.archive.Archive`.

``ALGORITHMS`` maps a CLI name to (config dataclass, algorithm class). Every algorithm has
``archives`` (name -> Archive), ``ask(max_count)``, ``tell(genomes, outcomes, descriptors)``,
``state_dict()`` and ``load_state_dict(state, archives)``, and its config has a ``space`` field
naming the behaviour space it searches in. Optional: ``ready_for_checkpoint()`` (default: always)
and ``main_archive``, the name of the archive whose ground truth gives ``coverage_archive`` and
``archive_size`` in the metrics (default ``"novelty"``). Class flags: ``needs_policy`` (the run
passes its policy), ``needs_space`` (the run passes its behaviour space, e.g. the learned
``AutoencoderSpace`` of TAXONS/STAX) and ``describes_itself`` (``tell`` gets ``descriptors=None``
and describes the outcomes with its own space, in one pass with the surprise).
"""

from __future__ import annotations

from qd.algorithms.baselines import (
    CMAES,
    CMAME,
    CMAESConfig,
    CMAMEConfig,
    MapElites,
    MEConfig,
    RandomConfig,
    RandomSearch,
)
from qd.algorithms.dvd import DvDES, DvDESConfig
from qd.algorithms.dvd_td3 import DvDTD3, DvDTD3Config
from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.algorithms.nslc import NSGA2, NSLC, NSGA2Config, NSLCConfig
from qd.algorithms.serene import Serene, SereneConfig
from qd.algorithms.stax import Stax, StaxConfig, StaxNTConfig, StaxPConfig
from qd.algorithms.taxons import (
    NTConfig,
    TaxoNConfig,
    Taxons,
    TaxonsConfig,
    TaxonsPConfig,
    TaxoSConfig,
)
from qd.policies import BatchedMLP, SereneMLP, make_policy, serene_sizes

ALGORITHMS: dict[str, tuple[type, type]] = {
    "ns": (NSConfig, NoveltySearch),
    "serene": (SereneConfig, Serene),
    "me": (MEConfig, MapElites),
    "cma-me": (CMAMEConfig, CMAME),
    "cma-es": (CMAESConfig, CMAES),
    "random": (RandomConfig, RandomSearch),
    "nslc": (NSLCConfig, NSLC),
    "nsga2": (NSGA2Config, NSGA2),
    "dvd-es": (DvDESConfig, DvDES),
    "dvd-td3": (DvDTD3Config, DvDTD3),
    "taxons": (TaxonsConfig, Taxons),
    "taxo-n": (TaxoNConfig, Taxons),
    "taxo-s": (TaxoSConfig, Taxons),
    "nt": (NTConfig, Taxons),
    "taxons-p": (TaxonsPConfig, Taxons),
    "stax": (StaxConfig, Stax),
    "stax-p": (StaxPConfig, Stax),
    "stax-nt": (StaxNTConfig, Stax),
}


def policy_for(algorithm: str, env_spec, hidden: list[int] | None = None) -> BatchedMLP:
    """The policy a run of ``algorithm`` on an env with ``env_spec`` evaluates.

    SERENE-family MLPs with the papers' sizes by default; an algorithm class may instead name
    ``policy_kind`` (see :data:`qd.policies.POLICIES`), ``policy_hidden`` and
    ``policy_options`` (DvD: tanh, 16 x 16, no output bias). ``hidden`` overrides the hidden
    layers (a run's ``policy_hidden``).
    """
    _, algo_cls = lookup(algorithm)
    kind = getattr(algo_cls, "policy_kind", "serene")
    obs, act = env_spec.obs_size, env_spec.action_size
    if kind == "serene":
        return SereneMLP(serene_sizes(obs, act, hidden, env=env_spec.name))
    hidden = list(hidden) if hidden is not None else list(algo_cls.policy_hidden)
    return make_policy(kind, (obs, *hidden, act), **getattr(algo_cls, "policy_options", {}))


def algorithm_names() -> list[str]:
    """Names accepted by ``qd run``."""
    return sorted(ALGORITHMS)


def lookup(name: str) -> tuple[type, type]:
    """(config class, algorithm class) of ``name``, with an error listing the known ones."""
    if name not in ALGORITHMS:
        raise KeyError(
            f"unknown algorithm {name!r}; known algorithms: {', '.join(algorithm_names())}"
        )
    return ALGORITHMS[name]
