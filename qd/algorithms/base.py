"""The algorithm protocol the run loop drives, and registry entries for named variants.

A search is an :class:`Algorithm`: ``ask`` genomes, ``tell`` their outcomes (it returns the
generation's metrics, written to metrics.jsonl), keep its individuals in ``archives``
(saved at checkpoints and at the end), and ``state_dict`` / ``load_state_dict`` the rest of its
state (tensors + JSON-able meta). A :class:`Learner` steps the environment itself
(``interact``) instead of asking for genomes. The class attributes tell the run what to build:
the policy family (``policy_kind``, ``policy_hidden``, ``policy_options``), whether the
algorithm needs the run's policy or behaviour space, and what the evaluator must record.

A :class:`Variant` is a registry entry: an algorithm class, its config class and the defaults
it overrides (e.g. ``taxo-n`` = TAXONS with ``selection="novelty"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from qd.archive import Archive
from qd.evaluation import Outcomes


class Algorithm:
    """Base of every search driven by :mod:`qd.run` (ask/tell over ``[B, D]`` genomes).

    Class attributes:
        name: registry name of the base algorithm.
        main_archive: archive whose ground truth gives ``coverage_archive`` and
            ``archive_size`` in the metrics.
        needs_policy: the run passes its policy (``policy=``) to the constructor.
        needs_space: the run passes its behaviour space (``space=``, e.g. a learned one).
        describes_itself: ``tell`` receives ``descriptors=None`` and describes the outcomes with
            its own space.
        policy_kind: ``"serene"`` (the papers' MLPs) or a :data:`qd.policies.POLICIES` name.
        policy_hidden: hidden sizes for a non-SERENE policy family.
        policy_options: keyword options of that policy family.
    """

    name: ClassVar[str] = "algorithm"
    main_archive: ClassVar[str] = "novelty"
    needs_policy: ClassVar[bool] = False
    needs_space: ClassVar[bool] = False
    describes_itself: ClassVar[bool] = False
    policy_kind: ClassVar[str] = "serene"
    policy_hidden: ClassVar[tuple[int, ...]] = ()
    policy_options: ClassVar[dict] = {}
    archives: dict[str, Archive]
    """Every archive of the search, by name (an attribute or a property)."""

    @property
    def recordings(self) -> dict[str, int]:
        """What the evaluator records besides the outcomes (``frames``, ``trajectory``,
        ``path`` counts); the behaviour space's needs are added by the run."""
        return {}

    def ask(self, max_count: int | None = None) -> torch.Tensor:
        """Genomes ``[B, D]`` to evaluate next (at most ``max_count``: the budget left)."""
        raise NotImplementedError

    def tell(
        self, genomes: torch.Tensor, outcomes: Outcomes, descriptors: torch.Tensor | None
    ) -> dict:
        """Take the evaluated ``genomes``; returns this generation's metrics."""
        raise NotImplementedError

    def ready_for_checkpoint(self) -> bool:
        """Whether the state can be checkpointed now (e.g. SERENE: between chunks)."""
        return True

    def state_dict(self) -> dict:
        """``{"tensors": {...}, "meta": {...}}``: everything but the archives."""
        raise NotImplementedError

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        """Restore from :meth:`state_dict` and the checkpoint's archives."""
        raise NotImplementedError


class Learner(Algorithm):
    """A search that steps the environment itself (DvD-TD3): the run calls :meth:`interact`
    instead of ask / evaluate / tell."""

    def interact(self, env, budget_left: int) -> tuple[Outcomes, dict]:
        """One round: the episodes it finished (counted against the budget) and its metrics
        (``env_time_s``: seconds spent stepping the env)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Variant:
    """A registry entry: ``algorithm`` configured by ``config`` with ``defaults`` overridden.

    Attributes:
        config: the config dataclass.
        algorithm: the :class:`Algorithm` class.
        defaults: config fields this variant sets (a user's ``--set`` still wins).
        summary: one line for ``qd run --help``.
    """

    config: type
    algorithm: type
    defaults: dict = field(default_factory=dict)
    summary: str = ""

    def __post_init__(self) -> None:
        known = {f.name for f in dataclasses.fields(self.config)}
        unknown = set(self.defaults) - known
        if unknown:
            raise ValueError(f"variant defaults {sorted(unknown)} are not fields of {self.config}")

    def make_config(self, overrides: dict | None = None):
        """The config with this variant's defaults, then ``overrides``."""
        return self.config(**{**self.defaults, **(overrides or {})})
