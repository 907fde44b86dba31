"""Matplotlib figures written as PNG files (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _env_axes(env, *, goals: bool = True, figsize=(6, 6)):
    """Figure with the environment's picture (and goals) under descriptor coordinates."""
    low, high = env.spec.descriptor_low, env.spec.descriptor_high
    if getattr(env, "image_y_down", False):  # e.g. HardMaze: image rows grow with y
        extent = [low[0], high[0], high[1], low[1]]
    else:
        extent = [low[0], high[0], low[1], high[1]]
    fig, ax = plt.subplots(figsize=figsize)
    if hasattr(env, "background"):
        ax.imshow(
            env.background(),
            extent=extent,
            interpolation="nearest",
            origin="upper" if getattr(env, "image_y_down", False) else "lower",
        )
    if goals and hasattr(env, "goal_circles"):
        for cx, cy, r in env.goal_circles():
            ax.add_patch(plt.Circle((cx, cy), r, fill=False, color="tab:green", lw=2))
    return fig, ax, extent


def _save(fig, ax, extent, path: str | Path | BinaryIO, title: str) -> Path | BinaryIO:
    """Write the figure as PNG to ``path`` (a file path, or an open binary file)."""
    if isinstance(path, str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("descriptor 0")
    ax.set_ylabel("descriptor 1")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_descriptors(
    env,
    descriptors: np.ndarray,
    path: str | Path,
    *,
    colours: np.ndarray | None = None,
    title: str = "",
    colour_label: str = "",
) -> Path:
    """Scatter ground-truth descriptors ``[N, 2]`` over the environment's own picture."""
    fig, ax, extent = _env_axes(env)
    sc = ax.scatter(
        descriptors[:, 0],
        descriptors[:, 1],
        s=6,
        c=colours,
        cmap="viridis",
        alpha=0.8,
        color=None if colours is not None else "tab:blue",
    )
    if colours is not None:
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04, label=colour_label)
    return _save(
        fig, ax, extent, path, title or f"{env.spec.name}: {len(descriptors)} final positions"
    )


def plot_heatmap(
    env, values: np.ndarray, path: str | Path | BinaryIO, *, title: str, colour_label: str
) -> Path | BinaryIO:
    """Grid ``[cells_x, cells_y]`` of values (NaN = empty cell) over the environment's picture,
    written as PNG to ``path`` (a file path or an open binary file)."""
    fig, ax, extent = _env_axes(env, goals=False, figsize=(6.5, 6))
    masked = np.ma.masked_invalid(values.T)  # rows = y cells
    mesh = ax.imshow(masked, extent=extent, cmap="viridis", alpha=0.85, interpolation="nearest")
    fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label=colour_label)
    return _save(fig, ax, extent, path, title)


def plot_paths(
    env, paths: np.ndarray, path: str | Path, *, title: str, labels: list[str] | None = None
) -> Path:
    """Trajectories ``[N, P, 2]`` of ground-truth descriptors over the environment's picture."""
    fig, ax, extent = _env_axes(env)
    for i, p in enumerate(paths):
        ax.plot(p[:, 0], p[:, 1], lw=1.5, label=labels[i] if labels else None)
        ax.scatter(p[-1:, 0], p[-1:, 1], s=30, marker="x", color="black")
    if labels:
        ax.legend(fontsize=8)
    return _save(fig, ax, extent, path, title)


def plot_curves(
    xs: np.ndarray,
    series: dict[str, np.ndarray],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> Path:
    """Line plot of several named series against ``xs``."""
    return plot_bands(
        {name: (xs, ys[None]) for name, ys in series.items()},
        path,
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        counts=False,
    )


def plot_bands(
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    counts: bool = True,
) -> Path:
    """Mean curve and min-max band per group: ``{label: (xs [T], ys [runs, T])}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in groups.items():
        line = ax.plot(xs, ys.mean(0), label=f"{label} (n={ys.shape[0]})" if counts else label)[0]
        if ys.shape[0] > 1:
            ax.fill_between(xs, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if len(groups) > 1 or counts:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def position_colours(points: np.ndarray, low, high) -> np.ndarray:
    """RGB colours ``[N, 3]`` that encode 2-D positions: red grows with x, blue with y."""
    unit = (np.asarray(points, float) - np.asarray(low)) / (np.asarray(high) - np.asarray(low))
    unit = unit.clip(0, 1)
    return np.stack([unit[:, 0], 0.35 + 0 * unit[:, 0], unit[:, 1]], 1)


def plot_learned_space(
    env,
    descriptors: np.ndarray,
    ground_truth: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Learned descriptors projected to 2-D (PCA) next to the ground-truth positions, both
    coloured by ground-truth position: a space that keeps places apart shows smooth colours."""
    from sklearn.decomposition import PCA

    colours = position_colours(ground_truth, env.spec.descriptor_low, env.spec.descriptor_high)
    n_components = min(2, descriptors.shape[1], len(descriptors))
    projected = PCA(n_components=n_components).fit_transform(descriptors)
    if projected.shape[1] == 1:
        projected = np.concatenate([projected, np.zeros_like(projected)], 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5))
    low, high = env.spec.descriptor_low, env.spec.descriptor_high
    if hasattr(env, "background"):
        y_down = getattr(env, "image_y_down", False)
        extent = (
            [low[0], high[0], high[1], low[1]] if y_down else [low[0], high[0], low[1], high[1]]
        )
        left.imshow(env.background(), extent=extent, origin="upper" if y_down else "lower")
        left.set_xlim(extent[0], extent[1])
        left.set_ylim(extent[2], extent[3])
    left.scatter(ground_truth[:, 0], ground_truth[:, 1], c=colours, s=8)
    left.set_title("ground truth (metrics only)")
    right.scatter(projected[:, 0], projected[:, 1], c=colours, s=8)
    right.set_title("learned descriptors, PCA")
    right.set_xlabel("PC 1")
    right.set_ylabel("PC 2")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
