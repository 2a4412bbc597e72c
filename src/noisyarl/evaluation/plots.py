"""PNG figures for reports: reconstruction grids, privacy-utility scatter, σ sweep, learning
curves.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no display, no
global state) and written atomically. Sizes are fixed by the arguments, so the pixel size of
each PNG is known in advance: ``(round(width_in * dpi), round(height_in * dpi))``.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from noisyarl.utils.io import atomic_write_bytes

#: Width of the row-label margin of :func:`save_image_grid`, in inches, and the characters of
#: one label line that fit in it at 8 pt.
GRID_LABEL_INCHES = 1.5
GRID_LABEL_CHARS = 18

#: Size of the scatter and sweep figures, in inches, and their resolution.
CHART_INCHES = (6.0, 4.5)
#: Size of the charts whose legend sits to the right of the axes (scatter, σ sweep), in inches.
LEGEND_CHART_INCHES = (8.5, 4.5)
CHART_DPI = 100

#: Series of the σ sweep: (row key, legend label, colour, marker).
_SWEEP_SERIES = (
    ("utility", "utility ↑", "tab:blue", "o"),
    ("privacy", "privacy ↓", "tab:red", "s"),
    ("delta", "Δ = utility − privacy ↑", "tab:green", "^"),
)

#: Score series of a learning curve: (record key, legend label, colour, marker).
_SCORE_SERIES = (("valid", "validation", "tab:blue", "o"), ("test", "test", "tab:orange", "s"))

#: Loss series of a learning curve, on the second y-axis: (record key, legend label, colour).
_LOSS_SERIES = (("train_loss", "train loss", "tab:red"), ("valid_loss", "validation loss",
                                                          "tab:purple"))

#: Titles longer than this many characters are wrapped onto several lines.
TITLE_WRAP = 60


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
        row_axes[0].set_ylabel(grid_label(label), rotation=0, ha="right", va="center",
                               fontsize=8)
    return _save_png(figure, path)


def grid_label(label: str) -> str:
    """A row label of :func:`save_image_grid` wrapped to :data:`GRID_LABEL_CHARS` characters a
    line, so that a long one (``noisy ARL RN18_3 (σ=15360)``) is not cut at the left edge."""
    return textwrap.fill(label, GRID_LABEL_CHARS, break_long_words=True)


def plot_privacy_utility(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str | None = None,
    privacy_label: str = "privacy: attacker accuracy (%) ↓",
    utility_label: str = "utility (%) ↑",
) -> Path:
    """Scatter of one point per row: x = ``row["privacy"]``, y = ``row["utility"]``; better
    defences lie up and to the left. Rows missing either value are skipped.

    Each row is named in the legend (no labels on the points, so none overlap); a row with
    ``privacy_low``/``privacy_high`` and ``utility_low``/``utility_high`` gets error bars; a
    row whose status says it did not learn is drawn hollow and marked so in the legend. Dashed
    lines show the chance levels (``privacy_chance``, ``utility_chance``, mean over rows). The
    PNG is :data:`LEGEND_CHART_INCHES` at :data:`CHART_DPI`. Returns ``path``.
    """
    points = [row for row in rows if _finite(row.get("privacy")) and _finite(row.get("utility"))]
    if not points:
        raise ValueError("no row has both a privacy and a utility value")
    figure = Figure(figsize=LEGEND_CHART_INCHES, dpi=CHART_DPI)
    ax = figure.subplots()
    colours = _colours(len(points))
    for row, colour in zip(points, colours, strict=True):
        learned = not str(row.get("status") or "")
        label = str(row.get("method", "?")) + ("" if learned else " (did not learn)")
        ax.errorbar(row["privacy"], row["utility"], xerr=_error_bar(row, "privacy"),
                    yerr=_error_bar(row, "utility"), fmt="o", color=colour, capsize=3,
                    markerfacecolor=colour if learned else "none", markersize=7, label=label,
                    zorder=3)
    _finish_trade_off(ax, points, title or "privacy-utility trade-off (better: up and left)",
                      privacy_label, utility_label)
    figure.tight_layout()
    return _save_png(figure, path)


def plot_pareto(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    front: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Privacy-utility curves, one per defence over its trade-off knob, and the Pareto front.

    ``curves``: defence label -> rows in knob-grid order (``privacy``, ``utility``, optional
    ``KEY_low``/``KEY_high`` error bars, ``status``, ``selected``); ``front``: the rows on the
    Pareto front (a dashed black line). A row that did not learn is hollow; the row chosen on
    validation is ringed. Chance levels are dashed grey lines. Returns ``path``.
    """
    figure = Figure(figsize=LEGEND_CHART_INCHES, dpi=CHART_DPI)
    ax = figure.subplots()
    colours = _colours(len(curves))
    drawn = []
    for (label, rows), colour in zip(curves.items(), colours, strict=True):
        points = [row for row in rows
                  if _finite(row.get("privacy")) and _finite(row.get("utility"))]
        if not points:
            continue
        drawn += points
        ax.plot([row["privacy"] for row in points], [row["utility"] for row in points],
                color=colour, linewidth=1, alpha=0.6)
        for index, row in enumerate(points):
            learned = not str(row.get("status") or "")
            ax.errorbar(row["privacy"], row["utility"], xerr=_error_bar(row, "privacy"),
                        yerr=_error_bar(row, "utility"), fmt="o", color=colour, capsize=3,
                        markerfacecolor=colour if learned else "none",
                        label=label if index == 0 else None, zorder=3)
            if row.get("selected") == "yes":
                ax.scatter(row["privacy"], row["utility"], s=180, facecolors="none",
                           edgecolors="black", linewidths=1.2, zorder=4)
    if not drawn:
        raise ValueError("no row has both a privacy and a utility value")
    ordered = sorted(front, key=lambda row: row["privacy"])
    if ordered:
        ax.plot([row["privacy"] for row in ordered], [row["utility"] for row in ordered],
                color="black", linestyle="--", linewidth=1.2, label="Pareto front (learned)",
                zorder=2)
    ax.scatter([], [], s=120, facecolors="none", edgecolors="black",
               label="ringed: chosen on validation")
    ax.scatter([], [], facecolors="none", edgecolors="grey", label="hollow: did not learn")
    _finish_trade_off(ax, drawn, title or "trade-off curves (better: up and left)",
                      "privacy: attacker accuracy (%) ↓", "utility (%) ↑")
    figure.tight_layout()
    return _save_png(figure, path)


def _finish_trade_off(ax: Axes, rows, title: str, x_label: str, y_label: str) -> None:
    """What a privacy-utility chart adds after its points: chance lines, labels, a wrapped
    title, axes kept within the percent range and the legend outside the axes."""
    _chance_lines(ax, rows)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(textwrap.fill(title, TITLE_WRAP), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(0.12)
    _clip_to_percent(ax)
    _outside_legend(ax, with_bars=any(_error_bar(row, "utility") is not None for row in rows))


def _outside_legend(ax: Axes, *, with_bars: bool) -> None:
    """The legend to the right of the axes, titled when the points carry 95 % error bars."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
              title="error bars: 95 % CI" if with_bars else None, title_fontsize=8)


def _clip_to_percent(ax: Axes) -> None:
    """Keep both axes within [-2, 102] %: an interval of two seeds can reach far beyond the
    possible range (its bars then run off the plot, which is honest and readable)."""
    for get, set_ in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
        low, high = get()
        set_(max(low, -2.0), min(high, 102.0))


def _error_bar(row: Mapping[str, Any], key: str) -> list[list[float]] | None:
    """[[below], [above]] of ``row[key]`` from ``KEY_low``/``KEY_high``, or None."""
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if not (_finite(low) and _finite(high)):
        return None
    return [[max(row[key] - low, 0.0)], [max(high - row[key], 0.0)]]


def _chance_lines(ax: Axes, rows: Sequence[Mapping[str, Any]]) -> None:
    """Dashed lines at the rows' mean privacy and utility chance levels (where given)."""
    for key, draw, style, label in (
            ("privacy_chance", ax.axvline, ":", "privacy chance (majority rate)"),
            ("utility_chance", ax.axhline, "--", "utility chance (majority rate)")):
        values = [float(row[key]) for row in rows if _finite(row.get(key))]
        if values:
            draw(sum(values) / len(values), color="grey", linestyle=style, linewidth=1,
                 label=label, zorder=1)


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


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
    figure = Figure(figsize=LEGEND_CHART_INCHES, dpi=CHART_DPI)
    ax = figure.subplots()
    ax.set_xscale("log")
    for key, label, colour, marker in _SWEEP_SERIES:
        _plot_sweep_series(ax, rows, key, label, colour, marker, zero_x)
    _sigma_ticks(ax, zero_x, positive)
    ax.set_xlabel("noise scale σ (log scale; 0 at the left)")
    ax.set_ylabel("accuracy (%) / Δ (pp)")
    ax.set_title(textwrap.fill(title or "σ sweep", TITLE_WRAP), fontsize=10)
    ax.grid(True, alpha=0.3)
    _sweep_legend(ax, rows)
    figure.tight_layout()
    return _save_png(figure, path)


def plot_learning_curve(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str,
    score_name: str,
    chance: float | None = None,
    chance_label: str = "chance (majority rate)",
    best_epoch: int | None = None,
    higher_is_better: bool = True,
) -> Path:
    """Score per epoch of a trained model (attacker, decoder, utility head), with its floor.

    Args:
        history: one record per epoch with ``epoch`` and ``valid`` (the validation score), and
            optionally ``test`` (score), ``train_loss`` and ``valid_loss``; missing or
            non-finite values are skipped. Other keys (``lr``) are not drawn.
        path: PNG file to write (:data:`CHART_INCHES` at :data:`CHART_DPI`).
        title: figure title (wrapped when long). score_name: y-axis label, e.g.
            ``"attacker accuracy (%)"`` or ``"PSNR (dB)"``; an arrow marks the better direction
            (``higher_is_better``).
        chance, chance_label: the floor, drawn as a dashed horizontal line, e.g. the majority
            rate or ``chance_label="mean-image baseline"`` for a PSNR; none when ``None``.
        best_epoch: marked by a dotted vertical line labelled "best validation epoch".

    Scores use the left y-axis, losses the right one; one legend below the plot lists both, so it
    never covers the curves. Returns ``path``.
    """
    records = sorted((row for row in history if _finite(row.get("epoch"))),
                     key=lambda row: float(row["epoch"]))
    if not any(_finite(row.get("valid")) for row in records):
        raise ValueError("no history record has both an epoch and a validation score")
    figure = Figure(figsize=CHART_INCHES, dpi=CHART_DPI)
    ax = figure.subplots()
    for key, label, colour, marker in _SCORE_SERIES:
        _plot_epoch_series(ax, records, key, label, colour, marker=marker)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1.2, label=chance_label)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="tab:green", linestyle=":", linewidth=1.5,
                   label="best validation epoch")
    handles = _loss_axis(ax, records)
    _label_learning_curve(ax, handles, title, score_name, higher_is_better)
    figure.tight_layout()
    return _save_png(figure, path)


def _plot_epoch_series(ax: Axes, records, key, label, colour, **style) -> list:
    points = [(float(row["epoch"]), float(row[key])) for row in records if _finite(row.get(key))]
    if not points:
        return []
    xs, ys = zip(*points, strict=True)
    return ax.plot(xs, ys, color=colour, label=label, markersize=4, **style)


def _loss_axis(ax: Axes, records) -> list:
    """Draw the losses on a twin y-axis (only if any are present); return their line handles."""
    if not any(_finite(row.get(key)) for row in records for key, _, _ in _LOSS_SERIES):
        return []
    loss_ax = ax.twinx()
    lines = [line for key, label, colour in _LOSS_SERIES
             for line in _plot_epoch_series(loss_ax, records, key, label, colour,
                                            linewidth=1, alpha=0.7)]
    loss_ax.set_ylabel("loss (thin lines)")
    return lines


def _label_learning_curve(ax: Axes, loss_handles: list, title: str, score_name: str,
                          higher_is_better: bool) -> None:
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{score_name} {'↑' if higher_is_better else '↓'}")
    ax.set_title(textwrap.fill(title, TITLE_WRAP))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles += loss_handles
    labels += [line.get_label() for line in loss_handles]
    ax.legend(handles, labels, fontsize=8, ncol=3, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), frameon=False)


def _plot_sweep_series(ax: Axes, rows, key, label, colour, marker, zero_x) -> None:
    """One series against σ, with error bars where rows give ``KEY_low``/``KEY_high``; the
    σ = 0 point is hollow and not joined to the line."""
    zero = [row for row in rows if float(row["sigma"]) == 0 and _finite(row.get(key))]
    points = [row for row in rows if float(row["sigma"]) > 0 and _finite(row.get(key))]
    if points:
        ax.errorbar([float(row["sigma"]) for row in points], [row[key] for row in points],
                    yerr=_error_bars(points, key), color=colour, marker=marker, label=label,
                    capsize=3)
    for row in zero:
        ax.errorbar([zero_x], [row[key]], yerr=_error_bar(row, key), color=colour,
                    marker=marker, markerfacecolor="none", markersize=7, capsize=3,
                    label=None if points else label)


def _error_bars(rows, key) -> list[list[float]] | None:
    """Error bars of several rows (as :func:`_error_bar`), or None unless every row has one."""
    bars = [_error_bar(row, key) for row in rows]
    if any(bar is None for bar in bars):
        return None
    return [[bar[0][0] for bar in bars], [bar[1][0] for bar in bars]]


def _sweep_legend(ax: Axes, rows) -> None:
    """Chance lines, and a legend entry that explains the hollow σ = 0 markers."""
    for key, style, label in (("utility_chance", "--", "utility chance (majority rate)"),
                              ("privacy_chance", ":", "privacy chance (majority rate)")):
        values = [float(row[key]) for row in rows if _finite(row.get(key))]
        if values:
            ax.axhline(sum(values) / len(values), color="grey", linestyle=style, linewidth=1,
                       label=label)
    if any(float(row["sigma"]) == 0 for row in rows):
        ax.scatter([], [], facecolors="none", edgecolors="black", label="hollow: σ = 0 (ARL)")
    _outside_legend(ax, with_bars=any(_finite(row.get("utility_low")) for row in rows))


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
    "LEGEND_CHART_INCHES",
    "GRID_LABEL_CHARS",
    "GRID_LABEL_INCHES",
    "TITLE_WRAP",
    "plot_learning_curve",
    "plot_pareto",
    "plot_privacy_utility",
    "plot_sigma_sweep",
    "save_image_grid",
]
