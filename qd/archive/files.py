"""Archive files: safetensors tensors with a JSON header (format, version, field schema,
settings, env spec, checksum). Nothing is ever unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from qd.archive.peek import (  # noqa: F401  (re-exported)
    FORMAT,
    FORMAT_VERSION,
    ArchiveFileError,
    check_fields,
    check_header,
    digest,
    open_archive,
)

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
