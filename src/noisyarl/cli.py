"""The ``noisyarl`` command: parse, load a config, call the library.

Every command is one call of the Python API; errors in data or configs are printed as one
``error:`` line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from noisyarl.config import ConfigError

EXIT_USER_ERROR = 2


def _synth_faces(args: argparse.Namespace) -> None:
    from noisyarl.data.synth import synthesize

    folder = synthesize(args.out, args.format, num_images=args.num_images,
                        image_size=args.image_size, seed=args.seed, progress=True)
    print(f"wrote {args.num_images} {args.format}-format faces to {folder}")


def _synth_objects(args: argparse.Namespace) -> None:
    from noisyarl.data.synth_objects import write_cifar10

    folder = write_cifar10(args.out, num_train=args.num_train, num_test=args.num_test,
                           seed=args.seed, progress=True)
    print(f"wrote {args.num_train} + {args.num_test} CIFAR-10-format images to {folder}")


def _data_info(args: argparse.Namespace) -> None:
    from noisyarl.data.registry import describe_dataset

    print(describe_dataset(args.dataset, args.root, args.image_size))


def _run(args: argparse.Namespace) -> None:
    from noisyarl.config import load_config
    from noisyarl.experiment import run_experiment

    config = load_config(args.config, args.set)
    metrics = run_experiment(config, args.out, resume=args.resume)
    keys = ("method", "split", "sigma", "utility", "privacy", "delta", "psnr", "ssim")
    print(" ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else
                   f"{k}={metrics[k]}" for k in keys))


def _compare(args: argparse.Namespace) -> None:
    from noisyarl.compare import run_comparison
    from noisyarl.config import load_config

    config = load_config(args.config, args.set)
    run_comparison(config, args.out or f"runs/compare-{config.name}", resume=args.resume)


def _sweep(args: argparse.Namespace) -> None:
    from noisyarl.config import load_config
    from noisyarl.sweep import run_sigma_sweep

    config = load_config(args.config, args.set)
    run_sigma_sweep(config, args.out or f"runs/sweep-{config.name}", args.sigma,
                    resume=args.resume, reconstruction=args.reconstruction)


def _correlation(args: argparse.Namespace) -> None:
    from noisyarl.evaluation.correlation import label_association

    try:
        association = label_association(args.dataset, args.root, args.column_a, args.column_b,
                                        args.split)
    except ValueError as error:  # unknown or regression column: a user error, not a crash
        raise ConfigError(str(error)) from error
    print(association.describe())


def _demo(args: argparse.Namespace) -> None:
    from noisyarl.demo import run_demo

    run_demo(args.out, quick=args.quick)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _config_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs (finished ones are reused)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=3 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisyarl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth-faces", help="write generated faces in a dataset's format")
    synth.add_argument("out", help="output folder (OUT/celeba or OUT/fairface is created)")
    synth.add_argument("--format", choices=("celeba", "fairface"), default="celeba")
    synth.add_argument("--num-images", type=_positive_int, default=1000)
    synth.add_argument("--image-size", type=_positive_int, default=178, help="image width in px")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_synth_faces)

    objects = commands.add_parser("synth-objects",
                                  help="write generated 32x32 objects in CIFAR-10's format")
    objects.add_argument("out", help="output folder (OUT/cifar-10-batches-py is created)")
    objects.add_argument("--num-train", type=_positive_int, default=50_000)
    objects.add_argument("--num-test", type=_positive_int, default=10_000)
    objects.add_argument("--seed", type=int, default=0)
    objects.set_defaults(handler=_synth_objects)

    info = commands.add_parser("data-info", help="check a dataset on disk and summarise it")
    info.add_argument("--dataset", required=True, choices=("celeba", "fairface", "cifar10",
                                                           "folder"))
    info.add_argument("--root", required=True)
    info.add_argument("--image-size", type=int, default=64)
    info.set_defaults(handler=_data_info)

    run = commands.add_parser("run", help="train a defence, run the attacks, write the report")
    _config_arguments(run, "run directory (default runs/<run name>)")
    run.set_defaults(handler=_run)

    compare = commands.add_parser("compare", help="every method of a table on the same data")
    _config_arguments(compare, "output folder (default runs/compare-<name>)")
    compare.set_defaults(handler=_compare)

    sweep = commands.add_parser("sweep", help="privacy, utility and Δ against σ")
    _config_arguments(sweep, "output folder (default runs/sweep-<name>)")
    sweep.add_argument("--sigma", type=_non_negative_float, nargs="+", default=None,
                       help="noise scales to run (default: the config's sweep.sigmas)")
    sweep.add_argument("--reconstruction", action="store_true",
                       help="also run the reconstruction attack at every σ")
    sweep.set_defaults(handler=_sweep)

    correlation = commands.add_parser("correlation",
                                      help="Cramér's V between two label columns")
    correlation.add_argument("dataset", choices=("celeba", "fairface", "cifar10", "folder"))
    correlation.add_argument("column_a")
    correlation.add_argument("column_b")
    correlation.add_argument("--root", required=True, help="folder holding the dataset")
    correlation.add_argument("--split", default="train", choices=("train", "valid", "test"))
    correlation.set_defaults(handler=_correlation)

    demo = commands.add_parser("demo", help="the main job on generated faces")
    demo.add_argument("--quick", action="store_true", help="a smaller demo (about 2 minutes)")
    demo.add_argument("--out", default="demo-out")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``noisyarl`` console script; returns the exit status."""
    from noisyarl.data.base import DatasetError

    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ConfigError, DatasetError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
