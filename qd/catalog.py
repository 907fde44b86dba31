"""Names of the algorithms ``qd run`` accepts, without importing them (for the CLI's help).

``tests/test_cli_startup.py`` checks that this list equals ``qd.algorithms.algorithm_names()``.
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
