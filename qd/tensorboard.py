"""Runs streamed to TensorBoard: ``qd run --tensorboard`` and ``qd export --format tensorboard``.

Needs the optional ``tensorboard`` package (``pip install 'qdtorch[tensorboard]'``); the rest of
qdtorch (``qd plot`` included) works without it. Event files go to ``RUN/tensorboard/`` during a
run (``tensorboard --logdir RUN``; a lockstep folder shows one TensorBoard run per seed) or to
the folder ``qd export`` names.

* Scalars: every number of a ``metrics.jsonl`` line under its key (lists as ``KEY/i``, e.g.
  ``max_reward/0``; strings and nulls are left out), with the line's ``evaluations`` as step.
* Images: at each checkpoint, heatmaps of the main archive on the coverage grid over the
  environment's picture (``archive/reward``: best objective per cell; ``archive/count``:
  individuals per cell), drawn by :func:`qd.plotting.plot_heatmap`, for 2-D descriptors.

A resumed run starts its writer with ``purge_step`` at its first new line, so TensorBoard drops
the events the interrupted session wrote after the checkpoint it resumed from.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from qd.archive import Archive
    from qd.run import Run

FOLDER = "tensorboard"
"""Subfolder of a run folder that ``qd run --tensorboard`` writes its event files to."""
HEATMAPS = ("reward", "count")
INSTALL_HINT = "pip install 'qdtorch[tensorboard]' (or pip install tensorboard)"


def summary_writer_class() -> type:
    """torch's ``SummaryWriter``, or ImportError naming the extra when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(
            f"TensorBoard logging needs the optional dependency tensorboard: {INSTALL_HINT}"
        ) from None
    return SummaryWriter


def scalars(line: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(tag, value)`` of every number in a metrics line (lists and dicts flattened with
    ``/``); ``evaluations`` (the step) is left out."""
    for key, value in line.items():
        tag = f"{prefix}{key}"
        if not prefix and key == "evaluations":
            continue
        if isinstance(value, bool | int | float):
            yield tag, float(value)
        elif isinstance(value, list | tuple):
            yield from scalars({str(i): v for i, v in enumerate(value)}, f"{tag}/")
        elif isinstance(value, dict):
            yield from scalars(value, f"{tag}/")


def heatmap_images(env, archive: Archive, *, title: str = "") -> dict[str, np.ndarray]:
    """``{"reward": image, "count": image}``: the archive's cells on the coverage grid, as
    ``[H, W, 3]`` float images in [0, 1]; empty for an archive without 2-D ground truth."""
    import matplotlib.image

    from qd.metrics import cell_values
    from qd.plotting import plot_heatmap

    gt = archive.field("ground_truth")
    if len(archive) == 0 or gt.ndim != 2 or gt.shape[1] != 2:
        return {}
    spec = env.spec.to_dict()
    images = {}
    for value in HEATMAPS:
        values = cell_values(gt, archive.objectives, spec, value=value)
        buffer = io.BytesIO()
        plot_heatmap(
            env,
            values.numpy(),
            buffer,
            title=f"{title}{value} per cell ({archive.name} archive, {len(archive)})",
            colour_label=value,
        )
        buffer.seek(0)
        images[value] = matplotlib.image.imread(buffer, format="png")[..., :3]
    return images


class TensorBoardLog:
    """One run's event files: metrics lines as scalars, archives as heatmap images.

    The writer is opened at the first metrics line, with ``purge_step`` at that line's
    evaluations (a resumed run replaces what the interrupted one wrote after its checkpoint).

    Args:
        folder: where the event files go.
        env: the run's environment (its picture and coverage grid for the heatmaps).
    """

    def __init__(self, folder: str | Path, env) -> None:
        self.folder = Path(folder)
        self.env = env
        self.writer_class = summary_writer_class()
        self.writer = None

    def _open(self, step: int):
        if self.writer is None:
            self.writer = self.writer_class(str(self.folder), purge_step=int(step))
        return self.writer

    def metrics(self, line: dict[str, Any]) -> None:
        """Write every number of ``line`` at step ``line["evaluations"]``."""
        step = int(line["evaluations"])
        writer = self._open(step)
        for tag, value in scalars(line):
            writer.add_scalar(tag, value, step)

    def archive(self, archive: Archive, evaluations: int) -> None:
        """Heatmaps of ``archive`` at step ``evaluations``; flushes the event file."""
        writer = self._open(evaluations)
        title = f"{evaluations:,} evaluations: "
        for value, image in heatmap_images(self.env, archive, title=title).items():
            writer.add_image(f"archive/{value}", image, int(evaluations), dataformats="HWC")
        writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class TensorBoardWatcher:
    """The hook :class:`qd.run.Run` calls when its config asks for ``tensorboard``: every
    metrics line as scalars, the main archive's heatmaps at every checkpoint."""

    def __init__(self, run: Run) -> None:
        self.log = TensorBoardLog(Path(run.folder) / FOLDER, run.env)

    def metrics(self, run: Run, line: dict[str, Any]) -> None:
        """After a metrics line is written."""
        self.log.metrics(line)

    def checkpoint(self, run: Run) -> None:
        """After a checkpoint is written."""
        archive = run.algorithm.archives[run.algorithm.main_archive]
        self.log.archive(archive, run.evaluations)

    def close(self) -> None:
        """When the run ends or stops."""
        self.log.close()


def watchers(run: Run) -> list[TensorBoardWatcher]:
    """The watchers a run's config asks for (``RunConfig.tensorboard``)."""
    return [TensorBoardWatcher(run)] if run.config.tensorboard else []


# -- qd export --format tensorboard --------------------------------------------------------------
def export_run(folder: str | Path, out: str | Path, *, imports: list[str] | tuple = ()) -> dict:
    """Write a run folder's metrics and archives to event files in ``out``.

    Scalars from every ``metrics.jsonl`` line; heatmap images of the main archive at each
    checkpoint still on disk and of the final archive. Returns counts of what was written.
    """
    from qd.archive import Archive
    from qd.report import env_of, main_archive_name
    from qd.run_folder import checkpoints, finished_at, read_config, read_metrics

    folder = Path(folder)
    read_config(folder)  # a run folder (clear errors otherwise)
    lines = read_metrics(folder)
    main = main_archive_name(folder)
    archives: list[tuple[int, Path]] = []
    for path in checkpoints(folder):
        if (path / f"archive-{main}.safetensors").is_file():
            archives.append((int(path.name), path / f"archive-{main}.safetensors"))
    final = folder / "archive" / f"{main}.safetensors"
    done = finished_at(folder)
    if final.is_file() and done is not None and all(step != done for step, _ in archives):
        archives.append((done, final))
    log = TensorBoardLog(out, None)
    if archives:
        log.env = env_of(folder, imports=imports)
    images = 0
    try:
        for line in lines:
            log.metrics(line)
        for step, path in sorted(archives):
            log.archive(Archive.load(path), step)
            images += 1
    finally:
        log.close()
    return {"run": str(folder), "out": str(out), "lines": len(lines), "archives": images}


def export(
    target: str | Path, out: str | Path | None = None, *, imports: list[str] | tuple = ()
) -> list[dict]:
    """``qd export --format tensorboard``: a run folder to ``out`` (default
    ``./RUN-tensorboard``), or each seed of a lockstep folder to ``out/seed-S``.

    Raises:
        FileExistsError: ``out`` exists and is not empty.
    """
    from qd.run_folder import is_lockstep, seed_folders

    summary_writer_class()  # fail before writing anything when tensorboard is missing
    target = Path(target)
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: not a run folder (TensorBoard export reads folders)")
    out = Path(out) if out is not None else Path(f"{target.resolve().name}-{FOLDER}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; pick another --out")
    runs = [(s, out / s.name) for s in seed_folders(target)] if is_lockstep(target) else []
    runs = runs or [(target, out)]
    created = not out.exists()
    try:
        return [export_run(run, where, imports=imports) for run, where in runs]
    except Exception:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
