"""PNG figures for reports: reconstruction grids, privacy-utility scatter, σ sweep.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no display, no
global state) and written atomically. Sizes are fixed by the arguments, so the pixel size of
each PNG is known in advance: ``(round(width_in * dpi), round(height_in * dpi))``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from noisyarl.utils.io import atomic_write_bytes

#: Width of the row-label margin of :func:`save_image_grid`, in inches.
GRID_LABEL_INCHES = 1.5

#: Size of the scatter and sweep figures, in inches, and their resolution.
CHART_INCHES = (6.0, 4.5)
CHART_DPI = 100

#: Series of the σ sweep: (row key, legend label, colour, marker).
_SWEEP_SERIES = (
    ("utility", "utility ↑", "tab:blue", "o"),
    ("privacy", "privacy ↓", "tab:red", "s"),
    ("delta", "Δ = utility − privacy ↑", "tab:green", "^"),
)


def save_image_grid(
    originals: torch.Tensor,
    reconstructions: Sequence[tuple[str, torch.Tensor]],
    path: str | Path,
    *,
    max_images: int = 8,
    cell_inches: float = 1.0,
    dpi: int = 100,
) -> Path:
    """Save originals (top row) over each method's reconstructions (one labelled row each).

    Args:
        originals: [N, C, H, W] images in [0, 1], C = 1 or 3.
        reconstructions: ``(label, images)`` pairs, images shaped like ``originals``.
        path: PNG file to write (parent directories are created).
        max_images: at most this many columns (the first images).
        cell_inches, dpi: each image cell is ``cell_inches`` square; the PNG is
            ``(GRID_LABEL_INCHES + columns * cell_inches) * dpi`` by ``rows * cell_inches * dpi``
            pixels.

    Values are clamped to [0, 1] for display. Returns ``path``.
    """
    columns = min(int(originals.shape[0]), max_images)
    rows = [("original", originals), *reconstructions]
    for label, images in rows:
        _check_grid_images(label, images, originals, columns)
    width = GRID_LABEL_INCHES + columns * cell_inches
    height = len(rows) * cell_inches
    figure = Figure(figsize=(width, height), dpi=dpi)
    axes = figure.subplots(len(rows), columns, squeeze=False)
    figure.subplots_adjust(left=GRID_LABEL_INCHES / width, right=1, bottom=0, top=1,
                           wspace=0.04, hspace=0.04)
    for row_axes, (label, images) in zip(axes, rows, strict=True):
        for column, ax in enumerate(row_axes):
            _show_image(ax, images[column])
        row_axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return _save_png(figure, path)


def plot_privacy_utility(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str | None = None,
    privacy_label: str = "privacy: attacker accuracy (%) ↓",
    utility_label: str = "utility (%) ↑",
) -> Path:
    """Scatter of one point per row: x = ``row["privacy"]``, y = ``row["utility"]``, annotated
    with ``row["method"]``. Better defences lie up and to the left. Rows missing either value
    are skipped. The PNG is :data:`CHART_INCHES` at :data:`CHART_DPI`. Returns ``path``."""
    points = [row for row in rows if _finite(row.get("privacy")) and _finite(row.get("utility"))]
    if not points:
        raise ValueError("no row has both a privacy and a utility value")
    figure = Figure(figsize=CHART_INCHES, dpi=CHART_DPI)
    ax = figure.subplots()
    for row in points:
        ax.scatter(row["privacy"], row["utility"], s=40, zorder=3)
        ax.annotate(str(row.get("method", "?")), (row["privacy"], row["utility"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel(privacy_label)
    ax.set_ylabel(utility_label)
    ax.set_title(title or "privacy-utility trade-off (better: up and left)")
    ax.grid(True, alpha=0.3)
    ax.margins(0.15)
    figure.tight_layout()
    return _save_png(figure, path)


def plot_sigma_sweep(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, title: str | None = None
) -> Path:
    """Utility, privacy and Δ against the noise scale σ, on a logarithmic σ axis.

    Args:
        rows: dicts with ``sigma`` (≥ 0) and any of ``utility``, ``privacy``, ``delta``
            (missing values are skipped).
        path: PNG file to write.

    σ = 0 has no place on a log axis: its points are drawn with hollow markers at one decade
    below the smallest positive σ (at 1 if there is none), ticked "0", set apart by a dotted line
    and not joined to the lines of the positive σ values. Returns ``path``.
    """
    if not rows:
        raise ValueError("no rows to plot")
    rows = sorted(rows, key=lambda row: float(row["sigma"]))
    positive = [float(row["sigma"]) for row in rows if float(row["sigma"]) > 0]
    zero_x = min(positive) / 10 if positive else 1.0
    figure = Figure(figsize=CHART_INCHES, dpi=CHART_DPI)
    ax = figure.subplots()
    ax.set_xscale("log")
    for key, label, colour, marker in _SWEEP_SERIES:
        _plot_sweep_series(ax, rows, key, label, colour, marker, zero_x)
    _sigma_ticks(ax, zero_x, positive)
    ax.set_xlabel("noise scale σ (log scale; 0 at the left)")
    ax.set_ylabel("accuracy (%) / Δ (pp)")
    ax.set_title(title or "σ sweep")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return _save_png(figure, path)


def _plot_sweep_series(ax: Axes, rows, key, label, colour, marker, zero_x) -> None:
    zero = [row[key] for row in rows if float(row["sigma"]) == 0 and _finite(row.get(key))]
    points = [(float(row["sigma"]), row[key]) for row in rows
              if float(row["sigma"]) > 0 and _finite(row.get(key))]
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, color=colour, marker=marker, label=label)
    if zero:
        ax.scatter([zero_x] * len(zero), zero, facecolors="none", edgecolors=colour,
                   marker=marker, s=50, label=None if points else label)


def _sigma_ticks(ax: Axes, zero_x: float, positive: list[float]) -> None:
    ticks = [zero_x, *sorted(set(positive))]
    ax.set_xticks(ticks, ["0", *(f"{sigma:g}" for sigma in ticks[1:])],
                  rotation=45 if len(ticks) > 6 else 0)
    ax.minorticks_off()
    if positive:
        ax.axvline(math.sqrt(zero_x * min(positive)), color="grey", linestyle=":", linewidth=1)


def _check_grid_images(label: str, images: torch.Tensor, originals: torch.Tensor,
                       columns: int) -> None:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{label}: expected [N, 1 or 3, H, W] images, got {tuple(images.shape)}")
    if images.shape[0] < columns or images.shape[1:] != originals.shape[1:]:
        raise ValueError(f"{label}: images {tuple(images.shape)} do not match the originals "
                         f"{tuple(originals.shape)}")


def _show_image(ax: Axes, image: torch.Tensor) -> None:
    """Draw one [C, H, W] image in [0, 1] without ticks or frame."""
    pixels = image.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy()
    if pixels.shape[2] == 1:
        ax.imshow(pixels[:, :, 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(pixels)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and math.isfinite(value)


def _save_png(figure: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


__all__ = [
    "CHART_DPI",
    "CHART_INCHES",
    "GRID_LABEL_INCHES",
    "plot_privacy_utility",
    "plot_sigma_sweep",
    "save_image_grid",
]
