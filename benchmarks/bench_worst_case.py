"""Worst-case privacy of every defence on generated faces (private Male / utility Smiling).

Runs ``noisyarl.runners.compare.run_comparison`` with ``attacks.suite: worst_case`` for the rows
of ``configs/paper/celeba_male_smiling.yaml``'s ``compare:`` list (the four baselines, ARL at
σ = 0 and noisy ARL, here at ``--sigma``), then prints: the headline (validation-selected) and
paper-protocol privacy and Δ beside the worst case over the attacker suite; for noisy ARL the
k-query table with fresh and with keyed noise (and the keyed noise's utility and time cost);
and identity re-identification. Everything is also written to ``OUT/worst_case.md`` and
``OUT/worst_case.json``.

Usage: python benchmarks/bench_worst_case.py --out /tmp/bench-worst-case [--num-images 1500]
       [--image-size 48] [--epochs 2] [--attack-epochs 2] [--reconstruction-epochs 1]
       [--sigma 9] [--queries 1 4 16 64] [--methods upper_bound ... arl noisy_arl]
       [--set train.batch_size=32 ...] [--row-params maxent_arl.alpha=0.4 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

# The sibling script: benchmarks/ is on sys.path.
from bench_compare import (
    add_override_arguments,
    chosen_rows,
    comparison_rows,
    row_key,
    with_row_params,
)

from noisyarl.attacks.suite import (
    ATTACKER_COLUMNS,
    QUERY_COLUMNS,
    WorstCaseResult,
    attacker_rows,
    query_table_rows,
)
from noisyarl.config import load_config
from noisyarl.evaluation.report import format_table
from noisyarl.methods import METHODS
from noisyarl.runners.compare import run_comparison
from noisyarl.runners.result import RunResult
from noisyarl.runtime.device import describe_device, resolve_device
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba
from noisyarl.utils.io import atomic_write_text, write_json

CONFIG = "configs/paper/celeba_male_smiling.yaml"

PRIVACY_COLUMNS = [
    ("method", "method", "{}"),
    ("utility", "utility ↑", "{:.2f}"),
    ("utility_chance", "utility chance", "{:.2f}"),
    ("privacy", "privacy ↓ (proxy, valid-selected)", "{:.2f}"),
    ("privacy_chance", "privacy chance", "{:.2f}"),
    ("privacy_advantage", "advantage ↓ (pp)", "{:.2f}"),
    ("privacy_paper", "privacy ↓ paper (proxy, best test epoch)", "{:.2f}"),
    ("delta", "Δ ↑ (pp)", "{:.2f}"),
    ("delta_normalised", "Δ/chance ↑", "{:.2f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("psnr_baseline", "PSNR mean image", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("ssim_baseline", "SSIM mean image", "{:.3f}"),
    ("sigma_eff", "σ_eff", "{:.3g}"),
    ("leakage_epochs", "proxy epochs", "{}"),
    ("reconstruction_epochs", "decoder epochs", "{}"),
    ("privacy_worst_case", "worst case ↓ (validation-selected)", "{:.2f}"),
    ("worst_case_attacker", "strongest", "{}"),
    ("delta_worst_case", "Δ worst case", "{:.2f}"),
    ("privacy_worst_case_best_test_epoch", "worst case, best test epoch", "{:.2f}"),
    ("status", "status", "{}"),
]
IDENTITY_COLUMNS = [
    ("method", "method", "{}"),
    ("nn_top1", "NN top-1", "{:.3f}"),
    ("nn_auc", "NN AUC", "{:.3f}"),
    ("head_top1", "metric head top-1", "{:.3f}"),
    ("head_auc", "metric head AUC", "{:.3f}"),
    ("chance", "top-1 chance", "{:.3f}"),
    ("head_epochs", "head epochs until stop", "{}"),
]


def bench_config(data_root: Path, args: argparse.Namespace):
    """CONFIG at benchmark size with the worst-case suite: its ``compare:`` rows chosen by
    ``--methods`` (in that order), rows with noise (σ > 0) at ``--sigma``."""
    config = load_config(CONFIG, [
        f"data.root={data_root}", f"data.image_size={args.image_size}", "data.cache_dir=null",
        f"train.epochs={args.epochs}", f"attacks.leakage.epochs={args.attack_epochs}",
        f"attacks.reconstruction.epochs={args.reconstruction_epochs}",
        "attacks.suite=worst_case", f"attacks.worst_case.queries={args.queries}",
        f"attacks.worst_case.identity_epochs={args.identity_epochs}", "train.progress=false",
        *args.set,
    ])
    compare = chosen_rows(with_row_params(comparison_rows(args.sigma, CONFIG), args.row_params),
                          args.methods, args.sigma)
    return dataclasses.replace(config, compare=compare)


def summarise(out: Path, rows: list[dict]) -> dict:
    """Per-method figures from each run's metrics.json (:class:`RunResult`) and its worst-case
    suite (:class:`WorstCaseResult`)."""
    summary = {"rows": [], "attackers": [], "identity": [], "queries": {}}
    for row in rows:
        result = RunResult.load(out / "runs" / row["runs"][0])
        worst = WorstCaseResult.from_dict(result.worst_case_suite)
        summary["rows"].append({
            **result.row(row["method"]),
            "privacy_worst_case_best_test_epoch": result.privacy_worst_case_best_test_epoch,
        })
        for attacker in attacker_rows(worst):
            summary["attackers"].append({"method": row["method"], **attacker})
        if worst.identity is not None:
            identity = worst.identity
            summary["identity"].append({
                "method": row["method"],
                "nn_top1": identity.nearest_neighbour["top1"],
                "nn_auc": identity.nearest_neighbour["auc"],
                "head_top1": identity.metric_head["top1"],
                "head_auc": identity.metric_head["auc"],
                "chance": identity.nearest_neighbour["top1_chance"],
                "head_epochs": identity.curve.epochs_run,
            })
        if worst.keyed is not None:
            summary["queries"][row["method"]] = {"table": query_table_rows(worst),
                                                 "keyed": worst.keyed}
    return summary


def render(summary: dict, header: str) -> str:
    parts = [header,
             "## Paper protocol vs worst case (privacy = attacker accuracy on Male, %)",
             format_table(summary["rows"], PRIVACY_COLUMNS),
             "## Each attacker (trained to its validation plateau; test accuracy at its best "
             "validation epoch, %)",
             format_table(summary["attackers"], [("method", "method", "{}"),
                                                 *ATTACKER_COLUMNS])]
    for method, figures in summary["queries"].items():
        keyed = figures["keyed"]
        parts += [f"## Multi-query averaging: {method}", format_table(figures["table"],
                                                                      QUERY_COLUMNS),
                  f"Keyed noise (its attacker adds fresh N(0, σ²) in training): utility "
                  f"{keyed.utility_keyed:.2f} vs {keyed.utility_fresh:.2f} with fresh noise; "
                  f"client {keyed.client_ms_per_image_keyed:.2f} vs "
                  f"{keyed.client_ms_per_image_fresh:.2f} ms/image. Key leaked: privacy "
                  f"{keyed.key_leaked:.2f}. One-pixel change gives new noise for "
                  f"{keyed.share_with_new_noise:.0%} of images."]
    parts += ["## Identity re-identification (test split, identity-disjoint)",
              format_table(summary["identity"], IDENTITY_COLUMNS)]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    row_keys = [row_key(entry) for entry in load_config(CONFIG).compare]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=1500)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    # Epoch ceilings of the attacks (each stops on its validation plateau; the ceiling is
    # raised to the defence's own step count).
    parser.add_argument("--attack-epochs", type=int, default=30)
    parser.add_argument("--reconstruction-epochs", type=int, default=30)
    parser.add_argument("--identity-epochs", type=int, default=30)
    parser.add_argument("--sigma", type=float, default=9.0)
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--methods", nargs="+", default=row_keys,
                        choices=[*row_keys, *(name for name in METHODS if name not in row_keys)],
                        help="rows to run, in this order (default: the config's; arl: noisy_arl, "
                             "σ = 0; other registered defences run at their defaults)")
    add_override_arguments(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    header = (f"# Worst-case privacy benchmark\n\n{describe_device(resolve_device('auto'))}, "
              f"torch {torch.__version__}; "
              f"{datetime.now(timezone.utc):%Y-%m-%d}; {args.num_images} generated faces at "
              f"{args.image_size} px, {args.epochs} training epochs, {args.attack_epochs} "
              f"attack epochs (ceilings), {args.reconstruction_epochs} reconstruction epochs, "
              f"{args.identity_epochs} metric-head epochs, σ = {args.sigma:g}; overrides "
              f"{' '.join(args.set) or 'none'}; row params {' '.join(args.row_params) or 'none'}.")
    data_root = args.out / "data"
    ensure_celeba(data_root, SynthConfig(num_images=args.num_images, image_size=args.image_size,
                                         seed=0))
    rows = run_comparison(bench_config(data_root, args), args.out / "compare", resume=True)
    summary = summarise(args.out / "compare", rows)
    summary["seconds"] = time.perf_counter() - started
    text = render(summary, header) + f"\nTotal {summary['seconds']:.0f} s.\n"
    atomic_write_text(args.out / "worst_case.md", text)
    write_json(args.out / "worst_case.json", {**summary, "queries": {
        method: {"table": figures["table"], "keyed": figures["keyed"].to_dict()}
        for method, figures in summary["queries"].items()}})
    print("\n" + text)


if __name__ == "__main__":
    main()
