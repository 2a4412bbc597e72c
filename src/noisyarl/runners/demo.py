"""The main job on built-in data: generated CelebA-format faces, private Male / utility Smiling.

``run_demo`` generates faces, then runs the "RN18" upper bound, ARL with sigma = 0, and noisy ARL
at the sigma that a small sweep picks on the *validation* split (largest validation delta), and
writes ``summary.json``, ``summary.csv`` and ``report.md`` with the reconstruction grid. The sweep
keeps its own files (``sweep/report.md``, ``sweep.json``, ``sweep.csv``, ``sigma_sweep.png``);
every run, the sweep's included, is a folder of ``runs/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisyarl.config import ExperimentConfig, config_from_dict
from noisyarl.data.registry import load_splits
from noisyarl.evaluation.report import RESULT_COLUMNS, format_table, write_report, write_summary
from noisyarl.runners.experiment import run_experiment, save_reconstruction_grid, summary_row
from noisyarl.runners.sweep import run_sigma_sweep, validation_delta
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of a demo. sigmas: the noisy-ARL sweep (sigma = 0 is run as the ARL row).

    attack_epochs: the leakage attacker's epochs; reconstruction_epochs: the decoder's (None: the
    same). The decoder dominates the attack time on CPU, hence its own setting.
    """

    num_images: int
    image_size: int
    epochs: int
    upper_bound_epochs: int
    attack_epochs: int
    sigmas: tuple[float, ...]
    split: int = 3
    batch_size: int = 64
    reconstruction_epochs: int | None = None


QUICK = DemoPlan(num_images=2400, image_size=48, epochs=2, upper_bound_epochs=2,
                 attack_epochs=2, sigmas=(1.0, 4.0), batch_size=32, reconstruction_epochs=1)
FULL = DemoPlan(num_images=5400, image_size=64, epochs=4, upper_bound_epochs=2,
                attack_epochs=4, sigmas=(1.0, 3.0, 9.0), reconstruction_epochs=2)


def demo_config(plan: DemoPlan, data_root: Path, method: str, sigma: float) -> ExperimentConfig:
    """The experiment config of one demo row."""
    return config_from_dict({
        "name": "demo",
        "data": {"dataset": "celeba", "root": str(data_root), "image_size": plan.image_size},
        "tasks": {"utility": {"label": "Smiling", "kind": "binary"},
                  "private": {"label": "Male", "kind": "binary"}},
        "method": {"name": method, "split": plan.split, "sigma": sigma},
        "train": {"epochs": plan.upper_bound_epochs if method == "upper_bound" else plan.epochs,
                  "batch_size": plan.batch_size, "progress": True},
        "attacks": {
            "leakage": {"epochs": plan.attack_epochs, "batch_size": plan.batch_size},
            "reconstruction": {"epochs": plan.reconstruction_epochs or plan.attack_epochs,
                               "batch_size": plan.batch_size},
        },
    })


def _row(label: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"method": label, **{k: v for k, v in summary_row(metrics).items() if k != "method"}}


def run_demo(
    out_dir: str | Path = "demo-out", quick: bool = False, plan: DemoPlan | None = None
) -> list[dict[str, Any]]:
    """Run the demo into ``out_dir``; returns the summary rows (one dict per table row).

    ``plan`` overrides the sizes of ``QUICK``/``FULL`` (tests use a tiny one). An interrupted
    demo continues where it stopped when run again with the same ``out_dir``.
    """
    plan = plan or (QUICK if quick else FULL)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    data_root = out_dir / "data"
    ensure_celeba(data_root, SynthConfig(num_images=plan.num_images, image_size=plan.image_size,
                                         seed=0), progress=True)
    splits = load_splits("celeba", data_root, plan.image_size, progress=True)
    runs = out_dir / "runs"

    def run(method: str, sigma: float) -> dict[str, Any]:
        config = demo_config(plan, data_root, method, sigma)
        print(f"\n== {config.run_name()}")
        return run_experiment(config, runs / config.run_name(), resume=True, splits=splits)

    upper = run("upper_bound", 0.0)
    # The sweep trains every σ (0 included) without the reconstruction attack; the two rows
    # shown then get it by resuming their finished runs, hence one runs/ folder for all. The
    # sweep's own report goes to sweep/, apart from the demo's.
    sweep = run_sigma_sweep(demo_config(plan, data_root, "noisy_arl", 0.0), out_dir / "sweep",
                            [0.0, *plan.sigmas], resume=True, splits=splits, runs_dir=runs)
    # The noisy row takes the best σ > 0 (σ = 0 is the ARL row already).
    noisy_sigma = max(plan.sigmas, key=lambda sigma: validation_delta(sweep.metrics[sigma]))
    arl, noisy = run("noisy_arl", 0.0), run("noisy_arl", noisy_sigma)

    rows = [_row("RN18 (upper bound)", upper), _row("ARL (σ=0)", arl),
            _row(f"noisy ARL (σ={noisy_sigma:g})", noisy)]
    grid = save_reconstruction_grid(
        [("ARL σ=0", runs / arl["run"]), (f"noisy σ={noisy_sigma:g}", runs / noisy["run"])],
        out_dir / "reconstructions.png")
    _write_outputs(out_dir, plan, rows, noisy_sigma, grid, arl["device"],
                   time.perf_counter() - started)
    return rows


def _write_outputs(out_dir, plan, rows, best_sigma, grid, device, seconds) -> None:
    write_summary(rows, out_dir)
    images = {"σ sweep (the choice is in sweep/sweep.json)": out_dir / "sweep" / "sigma_sweep.png"}
    if grid is not None:
        images["Reconstruction attack: originals (top), ARL σ=0, noisy ARL"] = grid
    notes = [
        f"Generated CelebA-format faces: {plan.num_images} images at {plan.image_size}px, "
        f"RN18_{plan.split}, {plan.epochs} training epochs, {plan.attack_epochs} leakage-attack "
        f"epochs, {plan.reconstruction_epochs or plan.attack_epochs} reconstruction epochs.",
        f"Noisy ARL's σ: the largest validation Δ among {list(plan.sigmas)}: {best_sigma:g} "
        "(every point in sweep/sweep.csv, sweep/sigma_sweep.png and sweep/report.md).",
        f"Device: {device}; wall time {seconds:.0f} s.",
    ]
    write_report(out_dir, title="noisyarl demo: private Male / utility Smiling",
                 summary_rows=rows, images=images, notes=notes)
    print("\n" + format_table(rows, RESULT_COLUMNS))
    print(f"\nwrote {out_dir / 'summary.json'} and {out_dir / 'report.md'} ({seconds:.0f} s)")


__all__ = ["FULL", "QUICK", "DemoPlan", "demo_config", "run_demo"]
