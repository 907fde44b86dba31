"""Names of the algorithms ``qd run`` accepts and their main archives, without importing them
(for the CLI's help and ``qd inspect``).

``tests/test_cli_startup.py`` checks both against ``qd.algorithms.ALGORITHMS``.
"""

ALGORITHM_NAMES = (
    "cma-es",
    "cma-me",
    "dvd-es",
    "dvd-td3",
    "me",
    "ns",
    "nsga2",
    "nslc",
    "nt",
    "random",
    "serene",
    "stax",
    "stax-nt",
    "stax-p",
    "taxo-n",
    "taxo-s",
    "taxons",
    "taxons-p",
)

EVOTORCH = "evotorch:<PGPE|SNES|XNES|CEM|CMAES|GA|MAPElites>"
"""The EvoTorch searchers ``qd run`` also accepts (:mod:`qd.integrations.evotorch_search`)."""

# each algorithm's main archive (``Algorithm.main_archive``); the others: ``novelty``
MAIN_ARCHIVES = {
    "cma-es": "elites",
    "cma-me": "elites",
    "me": "elites",
    "random": "elites",
    "dvd-es": "population",
    "dvd-td3": "population",
}


def main_archive(algorithm: str | None) -> str:
    """The main archive of a run of ``algorithm`` (``elites`` for ``evotorch:*``)."""
    if algorithm and algorithm.startswith("evotorch:"):
        return "elites"
    return MAIN_ARCHIVES.get(algorithm, "novelty")
