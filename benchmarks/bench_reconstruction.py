"""The strongest reconstruction attack per defence: the learned decoder against white-box and
black-box input optimisation, on finished runs.

Each RUN_DIR is a finished run (of ``noisyarl run``, ``compare`` or ``bench_compare.py``).
With ``--set``, the run is resumed with those overrides on its own ``config.yaml`` first: only
attack settings may change, so the trained defence is reused when its checkpoints are there and
only the attack stages run again (a run kept without checkpoints, by ``keep_runs.py``, trains
again: work on copies). Typical overrides: ``attacks.reconstruction.enabled=true
"attacks.extra=[white_box, black_box]"`` and reduced ``attacks.options``.

Then, for every run, one row per reconstruction attack it measured (``RunResult
.image_recoveries``): PSNR (dB, data_range 1) and SSIM beside the mean training image's on the
same test images (the decoder scores the whole test split, input optimisation its first
``test_images``), the gain over that baseline with its 95 % t interval over those test images
(an attack "did not learn" unless the interval lies above 0), and which attack is the
strongest (the largest gain: the run's worst case, as ``metrics.json``'s
``reconstruction_strongest``). Each row also
carries the run's utility and privacy beside their chance levels, because a reconstruction
figure means little without the trade-off it was bought with.

Writes ``OUT/reconstruction.md``, ``.csv``, ``.json`` and ``OUT/reconstructions_strongest.png``
(the same test images under each run's strongest attack).

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_reconstruction.py --out DIR RUN_DIR [...]
       [--labels "noisy ARL σ=9" ...] [--set attacks.reconstruction.enabled=true ...]
"""

from __future__ import annotations

import argparse
import math
from datetime import date
from pathlib import Path
from typing import Any

import torch

from noisyarl.attacks.base import strongest_recovery
from noisyarl.config import load_config
from noisyarl.evaluation.report import Column, format_table, write_csv
from noisyarl.evaluation.statistics import Interval
from noisyarl.runners.experiment import run_experiment, save_reconstruction_grid
from noisyarl.runners.result import RunResult
from noisyarl.runtime import describe_device, resolve_device
from noisyarl.utils.io import atomic_write_text, write_json

COLUMNS: list[Column] = [
    ("defence", "defence", "{}"),
    ("seed", "seed", "{}"),
    ("utility", "utility ↑", "{:.2f}"),
    ("utility_chance", "utility chance", "{:.2f}"),
    ("privacy", "privacy ↓ (attacker)", "{:.2f}"),
    ("privacy_chance", "privacy chance", "{:.2f}"),
    ("attack", "reconstruction attack", "{}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("psnr_baseline", "PSNR mean image", "{:.2f}"),
    ("gain_db", "gain (dB)", "{:+.2f}"),
    ("gain_interval", "gain 95 % interval (test images)", "{}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("ssim_baseline", "SSIM mean image", "{:.3f}"),
    ("status", "status", "{}"),
    ("strongest", "strongest", "{}"),
]


def reconstruction_rows(label: str, result: RunResult) -> list[dict[str, Any]]:
    """One row per reconstruction attack of ``result``, the strongest marked "yes"."""
    recoveries = result.image_recoveries()
    strongest = strongest_recovery(recoveries)
    return [{
        "defence": label, "seed": result.seed, "run": result.run,
        "utility": result.utility, "utility_chance": result.utility_chance,
        "privacy": result.privacy, "privacy_chance": result.privacy_chance,
        "attack": recovery.attack, "psnr": recovery.psnr,
        "psnr_baseline": recovery.psnr_baseline, "gain_db": recovery.gain_db,
        "ssim": recovery.ssim, "ssim_baseline": recovery.ssim_baseline,
        "gain_interval": _interval_text(recovery.gain_interval),
        "status": "" if recovery.learned else "did not learn (not beyond the mean image)",
        "strongest": "yes" if recovery is strongest else "",
    } for recovery in recoveries]


def _interval_text(gain: Interval | None) -> str:
    """"[low, high]" of a gain's interval; "—" for a result saved before it was measured."""
    if gain is None or math.isnan(gain.low):
        return "—"
    return f"[{gain.low:+.2f}, {gain.high:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", nargs="+", default=None,
                        help="one row label per run (default: the run directory's name)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="attack settings to resume every run with first")
    args = parser.parse_args()
    labels = args.labels or [run_dir.name for run_dir in args.run_dirs]
    if len(labels) != len(args.run_dirs):
        parser.error("--labels: give one label per run directory")

    for run_dir in args.run_dirs if args.set else []:
        config = load_config(run_dir / "config.yaml", args.set)
        run_experiment(config, run_dir, resume=True)

    results = [RunResult.load(run_dir) for run_dir in args.run_dirs]
    rows = [row for label, result in zip(labels, results, strict=True)
            for row in reconstruction_rows(label, result)]
    args.out.mkdir(parents=True, exist_ok=True)
    strongest = [strongest_recovery(result.image_recoveries()) for result in results]
    drawn = [(label, run_dir, recovery.attack) for label, run_dir, recovery
             in zip(labels, args.run_dirs, strongest, strict=True) if recovery is not None]
    grid = save_reconstruction_grid([(label, run_dir) for label, run_dir, _ in drawn],
                                    args.out / "reconstructions_strongest.png",
                                    attacks=[attack for _, _, attack in drawn])
    header = (f"# Strongest reconstruction attack per defence, {date.today()}\n\n"
              f"{describe_device(resolve_device('auto'))}, torch {torch.__version__}; "
              "PSNR in dB with data_range 1 on [0, 1] images; each attack beside the mean "
              "training image on the same test images; strongest = largest gain over it.\n")
    table = format_table(rows, COLUMNS)
    figure = f"\n![strongest reconstructions]({grid.name})\n" if grid else ""
    atomic_write_text(args.out / "reconstruction.md", f"{header}\n{table}\n{figure}")
    write_csv(rows, args.out / "reconstruction.csv")
    write_json(args.out / "reconstruction.json", {"rows": rows})
    print(table)
    print(f"\nwrote {args.out / 'reconstruction.md'}")


if __name__ == "__main__":
    main()
