"""Insertion rules: which offered candidates ``Archive.add`` keeps (storage is elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

INSERTION_RULES = ("all", "random", "top_novelty", "threshold", "local_competition")


@dataclass(frozen=True)
class InsertionRule:
    """Which candidates ``Archive.add`` keeps.

    Attributes:
        kind: ``all``; ``random`` (``count`` chosen uniformly at random); ``top_novelty`` (the
            ``count`` most novel); ``threshold`` (novelty >= ``threshold``); ``local_competition``
            (novelty >= ``threshold`` is added, otherwise the candidate replaces its nearest
            neighbour if it has a higher objective, as in NSLC / pyribs' ProximityArchive).
        count: number of candidates kept by ``random`` and ``top_novelty``.
        threshold: novelty threshold of ``threshold`` and ``local_competition``.
    """

    kind: str = "all"
    count: int = 5
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in INSERTION_RULES:
            raise ValueError(
                f"unknown insertion rule {self.kind!r}; known: {', '.join(INSERTION_RULES)}"
            )
        if self.count < 0:
            raise ValueError(f"insertion count must be >= 0, got {self.count}")


def chosen_rows(
    rule: InsertionRule, novelty: torch.Tensor, *, empty: bool, generator: torch.Generator
) -> torch.Tensor:
    """Indices of the candidates (with their ``novelty``) that ``rule`` adds as new rows.

    ``empty``: the archive holds no row yet (``threshold`` and ``local_competition`` then add
    every candidate);
    ``generator``: the archive's own (``random``). For ``local_competition`` the candidates not
    chosen may still replace their nearest neighbour (done by the archive).
    """
    batch = novelty.shape[0]
    device = novelty.device
    if rule.kind == "all":
        return torch.arange(batch, device=device)
    if rule.kind == "random":
        return torch.randperm(batch, generator=generator).to(device)[: rule.count]
    if rule.kind == "top_novelty":
        return torch.topk(novelty, min(rule.count, batch)).indices
    if empty:  # threshold and local competition: the first candidates found the archive
        return torch.arange(batch, device=device)
    return torch.nonzero(novelty >= rule.threshold).flatten()
