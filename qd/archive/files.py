"""Archive files: safetensors tensors with a JSON header (format, version, field schema,
settings, env spec, checksum), and :class:`ArchiveFiles`, the archive's ``save``/``load``.
Nothing is ever unpickled."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from qd.archive.insertion import InsertionRule
from qd.archive.peek import (  # noqa: F401  (re-exported)
    FORMAT,
    FORMAT_VERSION,
    ArchiveFileError,
    check_fields,
    check_header,
    digest,
    open_archive,
)

if TYPE_CHECKING:
    from qd.archive.storage import Archive

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def dtype_name(dtype: torch.dtype) -> str:
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"unsupported field dtype {dtype}")


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    return digest(
        {k: t.contiguous().view(torch.uint8).numpy().tobytes() for k, t in tensors.items()}
    )


def read_file(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    metadata, tensors = open_archive(path, "pt")
    header = check_header(path, metadata)
    if header.get("sha256") != checksum(tensors):
        raise ArchiveFileError(f"{path}: checksum mismatch, the file is corrupted")
    found = {k: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in tensors.items()}
    check_fields(path, header, found)
    return header, tensors


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict) -> None:
    """``safetensors.torch.save_file``, with its I/O errors (disk full, read-only folder)
    raised as ``OSError`` naming ``path``."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as err:
        if "I/O error" not in str(err):
            raise
        raise OSError(f"cannot write {path}: {err}") from None


def write_file(path: Path, tensors: dict[str, torch.Tensor], header: dict) -> Path:
    """Write ``tensors`` with ``header`` (plus format, version and checksum) to ``path``
    atomically: a temporary file, fsync, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "version": FORMAT_VERSION, **header, "sha256": checksum(tensors)}
    tmp = path.with_name(path.name + ".tmp")
    save_tensors(tensors, tmp, {"qdtorch": json.dumps(header)})
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


_BASE_FIELDS = ("solution", "objective", "measures", "ground_truth", "reward_area")


class ArchiveFiles:
    """State and files mixed into :class:`qd.archive.Archive` (its fields, settings and
    generator): :meth:`state_tensors`, :meth:`save`, :meth:`load`."""

    def _header(self) -> dict:
        return {
            "name": self.name,
            "size": self._size,
            "schema": {
                f: {"shape": list(shape), "dtype": dtype_name(dt)}
                for f, (shape, dt) in self._schema.items()
            },
            "settings": {
                "k_neighbors": self.k_neighbors,
                "insertion": asdict(self.insertion),
                "qd_score_offset": self.qd_score_offset,
                "novelty_backend": self.novelty_backend,
            },
            "env_spec": self.env_spec,
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Live rows of every field plus the generator state (CPU, contiguous)."""
        tensors = {f: self.field(f).detach().cpu().contiguous() for f in self._schema}
        tensors["__generator__"] = self._generator.get_state()
        return tensors

    def save(self, path: str | Path) -> Path:
        """Write the archive to ``path`` atomically (temp file, then rename)."""
        return write_file(Path(path), self.state_tensors(), self._header())

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Archive:
        """Read an archive written by :meth:`save`.

        Raises:
            ArchiveFileError: missing, truncated, corrupted, foreign or newer-version file
                (the message names the file and the problem).
        """
        path = Path(path)
        header, tensors = read_file(path)  # schema and shapes checked against the tensors
        schema = header["schema"]
        extras = {
            f: (tuple(s["shape"]), DTYPES[s["dtype"]])
            for f, s in schema.items()
            if f not in _BASE_FIELDS
        }
        settings = header["settings"]
        try:
            archive = cls(
                solution_dim=schema["solution"]["shape"][0],
                measure_dim=schema["measures"]["shape"][0],
                ground_truth_dim=schema["ground_truth"]["shape"][0],
                extra_fields=extras,
                k_neighbors=settings["k_neighbors"],
                insertion=InsertionRule(**settings["insertion"]),
                device=device,
                env_spec=header.get("env_spec") or {},
                qd_score_offset=settings["qd_score_offset"],
                novelty_backend=settings.get("novelty_backend", "auto"),
                initial_capacity=max(1, header["size"]),
                name=str(header.get("name", "archive")),
            )
            archive._generator.set_state(tensors.pop("__generator__"))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ArchiveFileError(f"{path}: corrupted archive header ({err!r})") from None
        size = header["size"]
        for name in archive._schema:
            archive._store[name][:size] = tensors[name].to(archive.device)
        archive._size = size
        archive._kdtree = None
        return archive
