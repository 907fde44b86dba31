"""The one container every algorithm uses: :class:`Archive`.

An archive stores individuals as rows of torch tensors on its device. Every row has the fields
``solution`` (the genome), ``objective`` (fitness), ``measures`` (the behaviour descriptor the
search uses), ``ground_truth`` (the environment's descriptor, for metrics), ``reward_area``
(-1 when none), plus any declared extra fields (e.g. ``frames`` kept for re-encoding). Capacity
doubles when full, so adding is amortised O(batch), not a copy of the archive.

It implements pyribs' :class:`~ribs.archives.ArchiveBase` contract (``add`` returns ``status``,
``value``, ``novelty`` and, for local competition, ``local_competition``; ``data``;
``sample_elites``; ``stats``; numpy ``dtypes``), so ribs schedulers, emitters, rankers and
``ribs.visualize`` work with it. Field names follow pyribs; :attr:`Archive.genomes`,
:attr:`Archive.descriptors` and :attr:`Archive.objectives` are named views of the live rows.

Modules: :mod:`~qd.archive.storage` (the class), :mod:`~qd.archive.insertion` (which
candidates ``add`` keeps), :mod:`~qd.archive.neighbours` (k-NN novelty, kernel diversity),
:mod:`~qd.archive.files` (``save``/``load``: safetensors with a JSON header and checksum;
nothing is ever unpickled), :mod:`~qd.archive.reading` (pyribs's readers) and
:mod:`~qd.archive.kernels` (RBF kernels).
"""

from __future__ import annotations

import importlib

from qd.archive.peek import FORMAT, FORMAT_VERSION, ArchiveFileError

# torch-heavy names are imported on first use, so ``qd.archive.peek`` (and ``qd inspect``)
# start without torch
_LAZY = {
    "Archive": "qd.archive.storage",
    "INSERTION_RULES": "qd.archive.insertion",
    "InsertionRule": "qd.archive.insertion",
    "rbf_kernel": "qd.archive.kernels",
    "rbf_log_det": "qd.archive.kernels",
}

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INSERTION_RULES",
    "Archive",
    "ArchiveFileError",
    "InsertionRule",
    "rbf_kernel",
    "rbf_log_det",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qd.archive' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
