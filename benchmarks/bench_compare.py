"""Comparison tables of every defence on generated CelebA-format faces, with client cost.

Runs ``noisyarl.runners.compare.run_comparison`` for the two CelebA pairs of the paper's tables
(private Male / utility Smiling, and the correlated private Mouth_Slightly_Open / utility
Smiling) on one generated dataset, plus the client cost of every defence at the paper's 178 px.
The paper configs are used as they are except for the data root, the sizes and the rows: both
pairs run the six rows of ``configs/paper/celeba_male_smiling.yaml``'s ``compare:`` list (every
baseline, ARL at σ = 0 and noisy ARL), noisy ARL at ``--sigma``: the appendix's σ values (15360
for table 3) belong to real CelebA at 178 px and long training.

Usage: python benchmarks/bench_compare.py --out /tmp/bench-compare [--num-images 4000]
       [--image-size 64] [--epochs 3] [--attack-epochs 30] [--reconstruction-epochs 30]
       [--sigma 9] [--pairs male_smiling mouth_smiling] [--rows arl noisy_arl ...]
       [--seeds 0 1 2 3 4] [--pareto] [--split-fractions 0.6 0.15 0.25] [--no-cost]
       [--set train.batch_size=32 ...] [--row-params maxent_arl.alpha=0.4 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from noisyarl.builders import untrained_defence
from noisyarl.config import CompareEntry, MethodConfig, load_config, parse_override
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.evaluation.report import format_table
from noisyarl.methods import METHODS
from noisyarl.runners.compare import run_comparison
from noisyarl.runtime.device import describe_device, resolve_device
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba

PAIRS = {
    "male_smiling": "configs/paper/celeba_male_smiling.yaml",
    "mouth_smiling": "configs/paper/table3_celeba_mouth_smiling.yaml",
}
#: The config whose ``compare:`` list gives the rows of both pairs.
ROWS_CONFIG = PAIRS["male_smiling"]


def client_costs(image_size: int) -> list[dict]:
    """Client cost of every defence (noisy ARL for K = 1..4) for one image of ``image_size``."""
    rows = []
    for name, defence_class in METHODS.items():
        for split in (1, 2, 3, 4) if defence_class.has_split else (3,):
            cost = measure_client_cost(untrained_defence(name, image_size, split=split).client,
                                       (3, image_size, image_size))
            label = defence_class.display_name
            if defence_class.has_split:
                label += f" RN18_{split}"
            rows.append({"method": label, "client_gflops": cost.gflops,
                         "client_params_m": cost.params / 1e6,
                         "peak_mib": cost.peak_activation_bytes / 2**20,
                         "z_shape": "x".join(map(str, cost.z_shape)),
                         "z_kib": cost.z_bytes / 1024})
    return rows


def with_sigma(entry: CompareEntry, sigma: float) -> CompareEntry:
    """``entry`` with its σ replaced, and the σ its label names (``(σ=1)`` -> ``(σ=9)``)."""
    old, new = f"σ={entry.method.sigma:g}", f"σ={sigma:g}"
    label = entry.label.replace(old, new) if old in entry.label else f"{entry.label} ({new})"
    return dataclasses.replace(entry, label=label,
                               method=dataclasses.replace(entry.method, sigma=sigma))


def comparison_rows(sigma: float, path: str = ROWS_CONFIG) -> list[CompareEntry]:
    """The ``compare:`` rows of ``path``; rows with noise (σ > 0) at ``sigma`` instead."""
    return [with_sigma(entry, sigma) if entry.method.sigma > 0 else entry
            for entry in load_config(path).compare]


def with_row_params(entries: list[CompareEntry], specs: list[str]) -> list[CompareEntry]:
    """``entries`` with ``--row-params`` applied: ``maxent_arl.alpha=0.4`` sets
    ``alpha`` in the params of every row of that defence (values parsed as YAML)."""
    changes: dict[str, dict] = {}
    for spec in specs:
        keys, value = parse_override(spec)
        if len(keys) != 2:
            raise SystemExit(f"--row-params {spec!r}: expected METHOD.PARAM=VALUE")
        changes.setdefault(keys[0], {})[keys[1]] = value
    return [dataclasses.replace(entry, method=dataclasses.replace(
                entry.method, params={**entry.method.params, **changes[entry.method.name]}))
            if entry.method.name in changes else entry for entry in entries]


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both comparison benchmarks share: config overrides and row params."""
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. train.batch_size=32")
    parser.add_argument("--row-params", nargs="+", default=[], metavar="METHOD.PARAM=VALUE",
                        help="params of one defence's rows, e.g. maxent_arl.dropout=0")


def row_key(entry: CompareEntry) -> str:
    """The ``--rows`` name of a compare row: its defence, ``arl`` for noisy ARL at σ = 0."""
    method = entry.method
    return "arl" if method.name == "noisy_arl" and method.sigma == 0 else method.name


def default_row(name: str, sigma: float) -> CompareEntry:
    """A row for a registered defence that the paper config does not list (NoPeek, Shredder,
    the image-space baselines, noise only): its defaults, RN18_3 where it has a split, and a
    defence with noise at ``sigma`` capped at the top of its own σ grid (pixel noise's σ is in
    image units)."""
    defence = METHODS[name]
    if defence.has_noise:
        grids = [knob.grid for knob in defence.knobs if knob.key == "sigma"]
        sigma = min(sigma, max(grids[0])) if grids else sigma
    else:
        sigma = 0.0
    label = defence.display_name + (" RN18_3" if defence.has_split else "")
    if sigma > 0:
        label += f" (σ={sigma:g})"
    return CompareEntry(label=label, method=MethodConfig(name=name, split=3, sigma=sigma))


def chosen_rows(entries: list[CompareEntry], keys: list[str] | None,
                sigma: float) -> list[CompareEntry]:
    """``entries`` in the order of ``keys`` (``--rows``), or all of them in config order; a key
    the config lacks is any registered defence's :func:`default_row`."""
    if not keys:
        return entries
    by_key = {row_key(entry): entry for entry in entries}
    return [by_key[key] if key in by_key else default_row(key, sigma) for key in keys]


def bench_config(path: str, data_root: Path, args: argparse.Namespace):
    """The paper config at benchmark size: every baseline, ARL (σ = 0) and noisy ARL (σ)."""
    config = load_config(path, [
        f"data.root={data_root}", f"data.image_size={args.image_size}", "data.cache_dir=null",
        f"train.epochs={args.epochs}", f"attacks.leakage.epochs={args.attack_epochs}",
        f"attacks.reconstruction.epochs={args.reconstruction_epochs}", *args.set,
    ])
    rows = with_row_params(comparison_rows(args.sigma), args.row_params)
    return dataclasses.replace(config, compare=chosen_rows(rows, args.rows, args.sigma))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    # Epoch ceilings of the attacks: each stops on its validation plateau, and its ceiling is
    # raised to the defence's own number of steps.
    parser.add_argument("--attack-epochs", type=int, default=30)
    parser.add_argument("--reconstruction-epochs", type=int, default=30)
    parser.add_argument("--sigma", type=float, default=9.0)
    parser.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS))
    parser.add_argument("--rows", nargs="+", default=None,
                        choices=["arl", *METHODS],
                        help="rows to run, in this order (default: the config's, all); "
                             "defences the config lacks run at their defaults")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train every row once per seed: mean ± 95 %% t-interval, paired "
                             "differences over seeds (default: the config's seed alone)")
    parser.add_argument("--pareto", action="store_true",
                        help="train each row over its trade-off knob's grid and report it at "
                             "the value chosen on validation (noisyarl compare --pareto)")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=None,
                        metavar=("TRAIN", "VALID", "TEST"),
                        help="shares of the generated faces per split, e.g. 0.6 0.15 0.25 for "
                             "1,000 test images out of 4,000 (default 0.8 0.1 0.1)")
    parser.add_argument("--no-cost", action="store_true",
                        help="skip the client-cost table at 178 px")
    add_override_arguments(parser)
    args = parser.parse_args()
    if args.seeds:
        args.set = [*args.set, f"seeds={args.seeds}"]
    print(f"# {describe_device(resolve_device('auto'))}, torch {torch.__version__}")
    if not args.no_cost:
        print_client_costs()
    data_root = args.out / "data"
    fractions = tuple(args.split_fractions) if args.split_fractions else None
    ensure_celeba(data_root, SynthConfig(num_images=args.num_images, image_size=args.image_size,
                                         seed=0, split_fractions=fractions), progress=True)
    for pair in args.pairs:
        started = time.perf_counter()
        run_comparison(bench_config(PAIRS[pair], data_root, args), args.out / pair,
                       resume=True, pareto=args.pareto)
        print(f"\n## {pair} ({time.perf_counter() - started:.0f} s): "
              f"{args.out / pair / 'table.md'}\n")
        print((args.out / pair / "table.md").read_text())


def print_client_costs() -> None:
    """The client cost of every defence at the paper's 178 px, one image."""
    print("\nClient cost at 178 x 178 (one image):\n")
    print(format_table(client_costs(178), [
        ("method", "client", "{}"), ("client_gflops", "GFLOPs", "{:.3f}"),
        ("client_params_m", "params (M)", "{:.3f}"), ("peak_mib", "peak act. (MiB)", "{:.1f}"),
        ("z_shape", "z shape", "{}"), ("z_kib", "z (KiB)", "{:.1f}")]))


if __name__ == "__main__":
    main()
