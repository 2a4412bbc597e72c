"""Tests of noisyarl.evaluation.plots: the PNGs exist, decode, have the stated size and content."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from noisyarl.evaluation.plots import (
    CHART_DPI,
    CHART_INCHES,
    GRID_LABEL_INCHES,
    LEGEND_CHART_INCHES,
    grid_label,
    plot_learning_curve,
    plot_privacy_utility,
    plot_sigma_sweep,
    save_image_grid,
)

CHART_PIXELS = (round(CHART_INCHES[0] * CHART_DPI), round(CHART_INCHES[1] * CHART_DPI))
LEGEND_PIXELS = (round(LEGEND_CHART_INCHES[0] * CHART_DPI),
                 round(LEGEND_CHART_INCHES[1] * CHART_DPI))


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=float)


def _solid(colour: tuple[float, float, float], n: int = 5, size: int = 16) -> torch.Tensor:
    return torch.tensor(colour).view(1, 3, 1, 1).expand(n, 3, size, size).clone()


def test_image_grid_puts_originals_on_top_and_one_row_per_method(tmp_path):
    originals = _solid((1.0, 0.0, 0.0))  # red
    rows = [("ARL σ=0", _solid((0.0, 0.0, 1.0))), ("noisy σ=960", _solid((0.0, 1.0, 0.0)))]
    path = tmp_path / "grid" / "reconstructions.png"

    save_image_grid(originals, rows, path, max_images=4, cell_inches=1.0, dpi=50)

    pixels = _pixels(path)
    cell = 50
    assert pixels.shape == (3 * cell, round((GRID_LABEL_INCHES + 4) * 50), 3)
    centre_x = pixels.shape[1] - cell // 2  # middle of the last image column
    top, middle, bottom = (pixels[cell * r + cell // 2, centre_x] for r in range(3))
    assert top.tolist() == [255, 0, 0]
    assert middle.tolist() == [0, 0, 255]
    assert bottom.tolist() == [0, 255, 0]
    label_margin = pixels[:, : round(GRID_LABEL_INCHES * 50)]
    assert (label_margin < 128).any()  # the row labels are drawn


def test_image_grid_shows_grayscale_and_clamps_values(tmp_path):
    originals = torch.linspace(-0.5, 1.5, 8 * 8).view(1, 1, 8, 8).repeat(2, 1, 1, 1)
    path = save_image_grid(originals, [], tmp_path / "gray.png", dpi=40)
    pixels = _pixels(path)
    assert pixels.shape == (40, round((GRID_LABEL_INCHES + 2) * 40), 3)
    assert pixels.std() > 10


def test_image_grid_rejects_mismatched_rows(tmp_path):
    originals = torch.rand(3, 3, 8, 8)
    with pytest.raises(ValueError):
        save_image_grid(originals, [("bad", torch.rand(3, 3, 4, 4))], tmp_path / "x.png")
    with pytest.raises(ValueError):
        save_image_grid(originals, [("few", torch.rand(2, 3, 8, 8))], tmp_path / "x.png")


def test_privacy_utility_scatter(tmp_path):
    rows = [{"method": "RN18", "privacy": 94.2, "utility": 93.5},
            {"method": "noisy ARL", "privacy": 57.4, "utility": 91.6},
            {"method": "no privacy figure", "utility": 90.0}]
    path = plot_privacy_utility(rows, tmp_path / "scatter.png")
    pixels = _pixels(path)
    assert pixels.shape == (LEGEND_PIXELS[1], LEGEND_PIXELS[0], 3)
    assert pixels.std() > 10 and (pixels < 250).mean() > 0.01
    with pytest.raises(ValueError):
        plot_privacy_utility(rows[2:], tmp_path / "none.png")


def test_privacy_utility_scatter_draws_intervals_chance_and_hollow_unlearned_rows(tmp_path):
    rows = [{"method": "noisy ARL", "privacy": 62.0, "privacy_low": 58.0, "privacy_high": 66.0,
             "utility": 88.0, "utility_low": 86.0, "utility_high": 90.0, "privacy_chance": 57.5,
             "utility_chance": 52.0, "status": ""},
            {"method": "MaxEnt", "privacy": 59.0, "utility": 50.0, "privacy_chance": 57.5,
             "utility_chance": 52.0, "status": "did not learn (utility)"}]
    bare = plot_privacy_utility([{key: row[key] for key in ("method", "privacy", "utility")}
                                 for row in rows], tmp_path / "bare.png")
    full = plot_privacy_utility(rows, tmp_path / "full.png")
    assert (_pixels(full) != _pixels(bare)).any(axis=2).mean() > 0.005  # bars, lines, legend


@pytest.mark.parametrize("sigmas", [[0.0, 15.0, 960.0, 15360.0], [0.0], [15.0, 960.0]])
def test_sigma_sweep_on_a_log_axis_with_sigma_zero(tmp_path, sigmas):
    rows = [{"sigma": s, "utility": 90 - i, "privacy": 80 - 5 * i, "delta": 10 + 4 * i}
            for i, s in enumerate(sigmas)]
    rows[-1]["delta"] = None  # a missing value is skipped
    path = plot_sigma_sweep(list(reversed(rows)), tmp_path / "sweep.png")
    pixels = _pixels(path)
    assert pixels.shape == (LEGEND_PIXELS[1], LEGEND_PIXELS[0], 3)
    assert pixels.std() > 10
    with pytest.raises(ValueError):
        plot_sigma_sweep([], tmp_path / "empty.png")


def _history(epochs: int = 12, *, losses: bool = True, test: bool = True) -> list[dict]:
    records = []
    for epoch in range(1, epochs + 1):
        record = {"epoch": epoch, "valid": 60 + 20 * (1 - 0.8**epoch), "lr": 1e-3}
        if test:
            record["test"] = record["valid"] - 1.5
        if losses:
            record |= {"train_loss": 0.7 * 0.8**epoch, "valid_loss": 0.75 * 0.85**epoch}
        records.append(record)
    return records


@pytest.mark.parametrize(("losses", "test", "chance", "best_epoch"),
                         [(True, True, 58.3, 9), (False, False, 58.3, None),
                          (True, False, None, 4), (False, True, None, None)])
def test_learning_curve_is_a_png_with_and_without_optional_series(tmp_path, losses, test,
                                                                  chance, best_epoch):
    path = plot_learning_curve(_history(losses=losses, test=test), tmp_path / "curve" / "a.png",
                               title="leakage attacker on z, CelebA Male", chance=chance,
                               score_name="attacker accuracy (%)", best_epoch=best_epoch)
    assert path.stat().st_size > 0
    pixels = _pixels(path)
    assert pixels.shape == (CHART_PIXELS[1], CHART_PIXELS[0], 3)
    assert pixels.std() > 10


def test_learning_curve_draws_the_chance_line(tmp_path):
    # Same curve with and without a floor far below it: the floor changes the picture.
    history = _history(losses=False, test=False)
    common = {"title": "decoder", "score_name": "PSNR (dB)"}
    plain = _pixels(plot_learning_curve(history, tmp_path / "plain.png", **common))
    floor = _pixels(plot_learning_curve(history, tmp_path / "floor.png", chance=40.0,
                                        chance_label="mean-image baseline", **common))
    assert (np.abs(plain - floor) > 0).any()


def test_learning_curve_skips_missing_values_and_needs_a_validation_score(tmp_path):
    history = _history(4)
    history[1]["valid"] = None
    history[2]["train_loss"] = float("nan")
    plot_learning_curve(list(reversed(history)), tmp_path / "gaps.png", title="t",
                        score_name="accuracy (%)", higher_is_better=False)
    with pytest.raises(ValueError):
        plot_learning_curve([{"epoch": 1, "train_loss": 0.5}], tmp_path / "none.png",
                            title="t", score_name="accuracy (%)")


def test_a_long_grid_label_is_wrapped_not_cut_at_the_left_edge(tmp_path):
    originals = torch.rand(4, 3, 16, 16)
    path = save_image_grid(originals, [("noisy ARL RN18_3 (σ=15360)", originals)],
                           tmp_path / "grid.png", max_images=4)
    pixels = _pixels(path)
    assert (pixels[:, :3] > 250).all(), "text reaches the left edge: the label is cut"
    assert all(len(line) <= 18 for line in grid_label("noisy ARL RN18_3 (σ=15360)").split("\n"))
