"""DvD-ES with two quirks of the authors' code, to test whether they explain the paper's trap.

The spec tells us not to reproduce them in ``qd run dvd-es``; this script adds them to a
subclass, registers it as ``dvd-es-authors`` and hands its arguments to the ``qd`` CLI:

* ``reset``: the authors' Adam keeps no moments between iterations while its step count grows
  (their ``Learner`` reloads zero moments before each update), so every step is
  ``lr * c(t) * sign(g)`` with ``c(1) = 1``, ``c(10) = 0.48``, ``c(100) = 0.98``. Here: the
  moments are zeroed before each step, the step count is kept.
* ``overwrite``: after each iteration the authors copy the last agent over the best one (its
  observation normaliser included). Here: the best agent by the batch's agent returns is
  overwritten by the last agent after the update (one iteration later than theirs: our agents
  are evaluated in the same batch as their perturbations).

    python benchmarks/dvd_authors_quirks.py run dvd-es-authors --env point-trap \\
        --budget 100500 --seed 0 --set fixed_lambda=0 --out runs/quirks-es-0
    python benchmarks/dvd_authors_quirks.py --no-overwrite run dvd-es-authors ...

Run folders name the algorithm ``dvd-es-authors``, which only this script registers: inspect
them with ``qd compare``/``qd plot`` (metrics only); resume them through this script with the
same ``--no-*`` flags (the quirk switches are not saved in the run's config).
"""

from __future__ import annotations

import sys

import torch

from qd.algorithms import ALGORITHMS, Variant
from qd.algorithms.dvd import DvDES, DvDESConfig

QUIRKS = {"reset": True, "overwrite": True}


class AuthorsDvDES(DvDES):
    """:class:`~qd.algorithms.dvd.DvDES` with the quirks switched on in ``QUIRKS``."""

    name = "dvd-es-authors"

    def tell(self, genomes: torch.Tensor, outcomes, descriptors: torch.Tensor) -> dict:
        agents = self.config.agents
        moments = self.optimizer.state.get(self.agents)
        if QUIRKS["reset"] and moments:
            moments["exp_avg"].zero_()
            moments["exp_avg_sq"].zero_()
        info = super().tell(genomes, outcomes, descriptors)
        if QUIRKS["overwrite"] and len(genomes) >= self.batch_size:
            best, last = int(outcomes.fitness[:agents].float().argmax()), agents - 1
            if best != last:
                with torch.no_grad():
                    self.agents[best] = self.agents[last]
                self.stats.mean[best] = self.stats.mean[last]
                self.stats.m2[best] = self.stats.m2[last]
                self.stats.count[best] = self.stats.count[last]
        return info


ALGORITHMS["dvd-es-authors"] = Variant(DvDESConfig, AuthorsDvDES)


def main() -> int:
    """Strip ``--no-reset`` / ``--no-overwrite``, run the ``qd`` CLI on the rest."""
    for quirk in QUIRKS:
        if f"--no-{quirk}" in sys.argv:
            QUIRKS[quirk] = False
            sys.argv.remove(f"--no-{quirk}")
    from qd.cli import main as qd_main

    return qd_main()


if __name__ == "__main__":
    sys.exit(main())
