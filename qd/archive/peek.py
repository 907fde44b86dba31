"""Reading archive files without torch: the header and the fields as numpy arrays.

Used where start-up time matters (``qd inspect RUN``); the checksum is verified as in
:func:`qd.archive.files.read_file`, so a damaged file is reported the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

FORMAT = "qdtorch-archive"
FORMAT_VERSION = 1


class ArchiveFileError(ValueError):
    """An archive file is missing, truncated, corrupted, foreign or from a newer version."""


def check_header(path: Path, metadata: dict) -> dict:
    """The qdtorch header of a file's safetensors metadata, with clear errors."""
    if "qdtorch" not in metadata:
        raise ArchiveFileError(f"{path}: not a qdtorch archive (no qdtorch header)")
    try:
        header = json.loads(metadata["qdtorch"])
    except json.JSONDecodeError as err:
        raise ArchiveFileError(f"{path}: corrupted archive header: {err}") from None
    if not isinstance(header, dict):
        raise ArchiveFileError(f"{path}: corrupted archive header (not a JSON object)")
    if header.get("format") != FORMAT:
        raise ArchiveFileError(f"{path}: foreign file format {header.get('format')!r}")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveFileError(
            f"{path}: archive format version {version} is newer than this qdtorch "
            f"(reads up to {FORMAT_VERSION}); upgrade qdtorch"
        )
    return header


BASE_FIELDS = {  # built-in fields: row shape's rank and dtype
    "solution": (1, "float32"),
    "objective": (0, "float32"),
    "measures": (1, "float32"),
    "ground_truth": (1, "float32"),
    "reward_area": (0, "int64"),
}
DTYPE_NAMES = ("float32", "float64", "int64", "int32", "uint8", "bool")
GENERATOR = "__generator__"


def check_fields(path: Path, header: dict, found: dict[str, tuple[tuple[int, ...], str]]) -> int:
    """The number of rows of an archive file after checking its header's schema and settings
    against the stored tensors ``found`` (name -> shape, dtype name)."""
    size = _size(path, header)
    schema = header.get("schema")
    if not isinstance(schema, dict):
        raise ArchiveFileError(f"{path}: corrupted archive header (no field schema)")
    for name, (rank, dtype) in BASE_FIELDS.items():
        spec = schema.get(name)
        if not isinstance(spec, dict) or len(spec.get("shape") or []) != rank:
            raise ArchiveFileError(f"{path}: corrupted archive header (field {name!r}: {spec!r})")
        if spec.get("dtype") != dtype:
            raise ArchiveFileError(f"{path}: field {name!r} must be {dtype}, got {spec['dtype']!r}")
    for name, spec in schema.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (
            not isinstance(shape, list)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            or spec.get("dtype") not in DTYPE_NAMES
        ):
            raise ArchiveFileError(f"{path}: corrupted archive header (field {name!r}: {spec!r})")
        if name not in found:
            raise ArchiveFileError(f"{path}: field {name!r} is missing")
        want = ((size, *shape), spec["dtype"])
        if tuple(found[name][0]) != want[0] or found[name][1] != want[1]:
            raise ArchiveFileError(
                f"{path}: field {name!r} holds {list(found[name][0])} {found[name][1]}, "
                f"the header says {list(want[0])} {want[1]}"
            )
    unexpected = sorted(set(found) - set(schema) - {GENERATOR})
    if unexpected:
        raise ArchiveFileError(f"{path}: fields {unexpected} are not in the header's schema")
    generator = found.get(GENERATOR)
    if generator is None or len(generator[0]) != 1 or generator[1] != "uint8":
        raise ArchiveFileError(f"{path}: no valid generator state")
    if not isinstance(header.get("settings"), dict):
        raise ArchiveFileError(f"{path}: corrupted archive header (no settings)")
    if not isinstance(header.get("env_spec") or {}, dict):
        raise ArchiveFileError(f"{path}: corrupted archive header (env_spec is not an object)")
    return size


def digest(named_bytes: dict[str, bytes]) -> str:
    """The archive checksum: sha256 over each field's name and raw bytes, by name."""
    sha = hashlib.sha256()
    for name in sorted(named_bytes):
        sha.update(name.encode())
        sha.update(named_bytes[name])
    return sha.hexdigest()


def open_archive(path: Path, framework: str) -> tuple[dict, dict]:
    """Raw metadata and tensors of an archive file (``framework``: ``"numpy"`` or ``"pt"``),
    with one error naming the file when it is missing or not readable safetensors."""
    from safetensors import safe_open

    if not path.is_file():
        raise ArchiveFileError(f"{path}: no such archive file")
    try:
        with safe_open(str(path), framework=framework) as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types
        raise ArchiveFileError(
            f"{path}: not a readable archive file (truncated or not safetensors): {err}"
        ) from None
    return metadata, tensors


def read_arrays(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and fields (numpy) of an archive file, checksum verified."""
    path = Path(path)
    metadata, arrays = open_archive(path, "numpy")
    header = check_header(path, metadata)
    if header.get("sha256") != digest(
        {k: np.ascontiguousarray(v).tobytes() for k, v in arrays.items()}
    ):
        raise ArchiveFileError(f"{path}: checksum mismatch, the file is corrupted")
    check_fields(path, header, {k: (v.shape, str(v.dtype)) for k, v in arrays.items()})
    return header, arrays


def archive_rows(path: str | Path) -> int:
    """Number of individuals in an archive file (checksum verified)."""
    header, _ = read_arrays(path)
    return _size(path, header)


def _size(path, header: dict) -> int:
    size = header.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArchiveFileError(f"{path}: corrupted archive header (size {size!r})")
    return size


def per_area_arrays(path: str | Path) -> dict[str, dict]:
    """Per reward area of an archive file's env: individuals, best and mean reward, best's row."""
    header, arrays = read_arrays(path)
    size = _size(path, header)
    objective = arrays["objective"][:size].astype(np.float64)
    areas = arrays["reward_area"][:size]
    table = {}
    for area in range(int((header.get("env_spec") or {}).get("reward_areas", 0))):
        index = np.nonzero(areas == area)[0]
        inside = objective[index]
        table[str(area)] = {
            "individuals": int(index.size),
            "max_reward": float(inside.max()) if index.size else 0.0,
            "mean_reward": float(inside.mean()) if index.size else 0.0,
            "best_index": int(index[inside.argmax()]) if index.size else None,
        }
    return table
