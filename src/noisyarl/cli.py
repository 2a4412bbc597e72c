"""The ``noisyarl`` command: parse, load a config, call the library.

Every command is one call of the Python API; errors in data, configs and paths are printed as
one ``error:`` line (no traceback) and exit with status 2, checked before work starts where they
can be (output locations, finished output folders, the device, the config's values).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from noisyarl.errors import ConfigError

EXIT_USER_ERROR = 2

DESCRIPTION = """\
Noisy adversarial representation learning: train a client-side obfuscator that hides a private
attribute of an image while keeping a utility task, attack it, and report privacy and utility.
Run `noisyarl COMMAND --help` for the options of one command."""

EPILOG = """\
common commands:
  noisyarl demo --quick                              the whole job on generated faces
  noisyarl synth-faces data --format celeba          generated CelebA-format faces in data/
  noisyarl data-info --dataset celeba --root data    check a dataset on disk
  noisyarl run CONFIG.yaml --out runs/x              train one defence, attack it, report
  noisyarl compare CONFIG.yaml --out runs/t          a table of defences on the same data
  noisyarl sweep CONFIG.yaml --sigma 0 1 10          privacy and utility against σ

Errors in data, configs or paths print one `error:` line and exit with status 2."""

#: errno values of writes that fail for lack of room or a read-only disk.
_DISK_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "the file system is read-only"}


def _check_output_dir(path: str | Path, what: str) -> None:
    """Fail before any work when ``path`` cannot be (or become) a folder this process writes in.

    what: how the user named the path (``--out``), for the message.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: is a file, not a folder; choose another path")
    existing = next((p for p in path.parents if p.exists()), Path("."))
    if not path.exists() and not existing.is_dir():
        raise ConfigError(f"{what} {path}: cannot make this folder, {existing} is a file")
    target = path if path.exists() else existing
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: {target} is not writable (permission denied)")


def _check_output_file(path: str | Path, what: str) -> None:
    """Like :func:`_check_output_dir` for a file to write: its folder must be usable."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a folder; name a file")
    _check_output_dir(path.parent, what)


def _os_error_line(error: OSError) -> str | None:
    """One line for a file-system error a user causes (permissions, a file where a folder
    belongs, a full disk), naming the path; None for any other error (kept as a traceback)."""
    if isinstance(error, PermissionError):
        reason = "permission denied"
    elif isinstance(error, NotADirectoryError):
        reason = "a file is in the way where a folder is needed"
    elif isinstance(error, IsADirectoryError):
        reason = "is a folder, a file is needed"
    elif error.errno in _DISK_ERRORS:
        reason = _DISK_ERRORS[error.errno]
    else:
        return None
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(names)}: {reason}" if names else f"{reason} ({error})"


def _synth_faces(args: argparse.Namespace) -> None:
    from noisyarl.synthetic.faces import synthesize

    _check_output_dir(Path(args.out) / args.format, "synth-faces OUT")
    folder = synthesize(args.out, args.format, num_images=args.num_images,
                        image_size=args.image_size, seed=args.seed, progress=True)
    print(f"wrote {args.num_images} {args.format}-format faces to {folder}")


def _synth_objects(args: argparse.Namespace) -> None:
    from noisyarl.data.cifar import BASE_FOLDER
    from noisyarl.synthetic.objects import write_cifar10

    _check_output_dir(Path(args.out) / BASE_FOLDER, "synth-objects OUT")
    folder = write_cifar10(args.out, num_train=args.num_train, num_test=args.num_test,
                           seed=args.seed, progress=True)
    print(f"wrote {args.num_train} + {args.num_test} CIFAR-10-format images to {folder}")


def _data_info(args: argparse.Namespace) -> None:
    from noisyarl.data.registry import describe_dataset

    print(describe_dataset(args.dataset, args.root, args.image_size))


def _load_config(args: argparse.Namespace):
    """The config file with ``--set`` overrides, ``--seeds``, ``--executor`` and ``--address``
    applied."""
    import json

    from noisyarl.config import load_config

    seeds = [f"seeds={list(args.seeds)}"] if args.seeds else []
    executor = [f"executor.name={args.executor}"] if args.executor else []
    # a JSON string is a YAML string: an address like HOST:PORT stays text
    address = [f"executor.address={json.dumps(args.address)}"] if args.address else []
    return load_config(args.config, [*args.set, *seeds, *executor, *address])


def _run(args: argparse.Namespace) -> None:
    from noisyarl.evaluation.report import format_table
    from noisyarl.runners.experiment import run_experiment
    from noisyarl.runners.result import SUMMARY_COLUMNS, RunResult
    from noisyarl.runners.seeds import run_over_seeds

    config = _load_config(args)
    if len(config.run_seeds()) > 1:
        out = args.out or Path("runs") / f"{config.name}-{config.method.name}-seeds"
        _check_output_dir(out, "--out")
        run_over_seeds(config, out, resume=args.resume)
        return
    config = config.with_seed(config.run_seeds()[0])
    # run_experiment's default run directory, checked like an explicit --out
    _check_output_dir(args.out or Path("runs") / config.run_name(), "--out")
    metrics = run_experiment(config, args.out, resume=args.resume)
    print(format_table([RunResult.from_metrics(metrics).row()], SUMMARY_COLUMNS))


def _compare(args: argparse.Namespace) -> None:
    from noisyarl.runners.compare import run_comparison

    config = _load_config(args)
    out = args.out or f"runs/compare-{config.name}"
    _check_output_dir(out, "--out")
    run_comparison(config, out, resume=args.resume, pareto=args.pareto)


def _sweep(args: argparse.Namespace) -> None:
    from noisyarl.runners.sweep import run_sigma_sweep

    config = _load_config(args)
    out = args.out or f"runs/sweep-{config.name}"
    _check_output_dir(out, "--out")
    run_sigma_sweep(config, out, args.sigma, resume=args.resume,
                    reconstruction=args.reconstruction)


def _correlation(args: argparse.Namespace) -> None:
    from noisyarl.evaluation.correlation import label_association

    try:
        association = label_association(args.dataset, args.root, args.column_a, args.column_b,
                                        args.split)
    except ValueError as error:  # unknown or regression column: a user error, not a crash
        raise ConfigError(str(error)) from error
    print(association.describe())


def _demo(args: argparse.Namespace) -> None:
    from noisyarl.runners.demo import run_demo

    _check_output_dir(args.out, "--out")
    run_demo(args.out, quick=args.quick)


def _study_build(args: argparse.Namespace) -> None:
    from noisyarl.study.build import build_study

    _check_output_dir(args.out, "--out")
    manifest = build_study(args.run_dirs, args.out, n=args.n, seed=args.seed,
                           participants=args.participants, question=args.question,
                           classifier_epochs=args.classifier_epochs)
    print(f"wrote the study to {manifest.parent} (participant codes in "
          f"{manifest.parent / 'participant_codes.txt'})")


def _study_serve(args: argparse.Namespace) -> None:
    from noisyarl.study.app import serve_study

    serve_study(args.study, host=args.host, port=args.port)


def _study_results(args: argparse.Namespace) -> None:
    from noisyarl.study.results import format_scores, study_results

    print(format_scores(study_results(args.study)))


def _export(args: argparse.Namespace) -> None:
    from noisyarl.deploy.export import export_client

    if args.int8 and args.format != "onnx":
        raise ConfigError("--int8 quantises an ONNX export; drop --format torchscript")
    exported = export_client(args.run_dir, args.format, args.out, noise=not args.no_noise)
    check = exported.check
    print(f"wrote {exported.path} ({exported.metadata['noise_description']})")
    if check.noise:
        print(f"check: residual mean {check.residual_mean:.4g}, std {check.residual_std:.4g} "
              f"(σ = {check.expected_sigma:g}): {'passed' if check.passed else 'FAILED'}")
    else:
        print(f"check: max |z - PyTorch z| = {check.max_abs_error:.3g} (max |z| = "
              f"{check.scale:.3g}): {'passed' if check.passed else 'FAILED'}")
    passed = check.passed and (not args.int8 or _export_int8(args, exported.path))
    if not passed:
        raise SystemExit(1)


def _export_int8(args: argparse.Namespace, fp32: Path) -> bool:
    """``export --int8``: quantise the fp32 file just written; print it; True if checked ok."""
    from noisyarl.deploy.quantize import export_int8_client

    int8 = export_int8_client(args.run_dir, fp32, mode=args.int8_mode,
                              calibration_images=args.calibration_images)
    record, check = int8.metadata["quantization"], int8.check
    how = (f"calibrated on {record['calibration']['images']} training images"
           if record["calibration"] else "no calibration")
    print(f"wrote {int8.path} (int8, {record['mode']}: {how}; noise kept in float32; "
          f"{100 * int8.size_ratio:.0f}% of the fp32 file's size)")
    print(f"int8 check: RMS(z_int8 - z_fp32) = {100 * check.relative_error:.2f}% of RMS(z) "
          f"(tolerance {100 * check.tolerance:g}%; max |error| {check.max_abs_error:.3g}, "
          f"max |z| {check.max_abs:.3g}) on {check.image_source}, noise zeroed: "
          f"{'passed' if check.passed else 'FAILED'}")
    return check.passed


def _latency(args: argparse.Namespace) -> None:
    from noisyarl.deploy.latency import latency_of_methods, latency_of_run
    from noisyarl.utils.io import write_json

    if args.json:
        _check_output_file(args.json, "--json")
    options = {"batch_sizes": args.batch_size, "runs": args.runs, "warmup": args.warmup,
               "int8": args.int8}
    if args.run_dir is not None:
        report = latency_of_run(args.run_dir, **options)
    else:
        report = latency_of_methods(args.method, args.image_size, args.split, args.sigma,
                                    **options)
    print(f"peak (fp32 matrix product): {report.peak_gflop_per_second:.1f} GFLOP/s, "
          f"{report.threads} threads, input {report.image_size} px")
    print(report.markdown())
    if args.json:
        write_json(args.json, report.to_dict())


def _serve(args: argparse.Namespace) -> None:
    import os

    from noisyarl.deploy.service import ServiceSettings, serve

    token = os.environ.get(args.token_env) or None
    settings = ServiceSettings(token=token, max_batch=args.max_batch)
    serve(args.run_dir, args.host, args.port, settings)


def _port(text: str) -> int:
    """A TCP port for ``serve`` and ``study serve``: an integer in 1..65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {text!r}")
    return value


def _int_at_least(low: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (``why``: the reason, shown in the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}{why}, got {text}")
        return value

    return parse


_positive_int = _int_at_least(1)
#: The model input side: the config's data.image_size bound.
_model_image_size = _int_at_least(16, " (the smallest model input)")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _dataset_names() -> tuple[str, ...]:
    from noisyarl.data.registry import DATASETS  # late import: the loaders import torch

    return tuple(DATASETS)


def _config_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs (finished ones are reused)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--seeds", type=_int_at_least(0), nargs="+", default=None,
                        metavar="SEED",
                        help="train every run once per seed and report mean ± 95 %% interval "
                             "(overrides the config's seeds:)")
    parser.add_argument("--executor", choices=("serial", "ray"), default=None,
                        help="where a study's runs execute: one after another here (serial) "
                             "or as Ray tasks (overrides the config's executor.name)")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="with --executor ray: the Ray cluster to join (auto: the one "
                             "`ray start` started; default: that one if any, else a new local "
                             "instance)")


def build_parser() -> argparse.ArgumentParser:
    from noisyarl.data.base import SPLITS  # late import: the data layer imports torch

    parser = argparse.ArgumentParser(prog="noisyarl", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, title="commands",
                                     metavar="COMMAND")

    synth = commands.add_parser("synth-faces", help="write generated faces in a dataset's format")
    synth.add_argument("out", help="output folder (OUT/celeba or OUT/fairface is created)")
    synth.add_argument("--format", choices=("celeba", "fairface"), default="celeba")
    synth.add_argument("--num-images", type=_positive_int, default=1000)
    synth.add_argument("--image-size", type=_int_at_least(32), default=178,
                       help="image width in px (>= 32)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_synth_faces)

    objects = commands.add_parser("synth-objects",
                                  help="write generated 32x32 objects in CIFAR-10's format")
    objects.add_argument("out", help="output folder (OUT/cifar-10-batches-py is created)")
    objects.add_argument("--num-train", type=_int_at_least(5, " (one per training batch)"),
                         default=50_000)
    objects.add_argument("--num-test", type=_positive_int, default=10_000)
    objects.add_argument("--seed", type=int, default=0)
    objects.set_defaults(handler=_synth_objects)

    info = commands.add_parser("data-info", help="check a dataset on disk and summarise it")
    info.add_argument("--dataset", required=True, choices=_dataset_names())
    info.add_argument("--root", required=True)
    info.add_argument("--image-size", type=_model_image_size, default=64,
                      help="model input side in px (>= 16)")
    info.set_defaults(handler=_data_info)

    run = commands.add_parser("run", help="train a defence, run the attacks, write the report")
    _config_arguments(run, "run directory (default runs/<run name>)")
    run.set_defaults(handler=_run)

    compare = commands.add_parser("compare", help="every method of a table on the same data")
    _config_arguments(compare, "output folder (default runs/compare-<name>)")
    compare.add_argument("--pareto", action="store_true",
                         help="train each row over its trade-off knob's grid and report it at "
                              "the value chosen on validation, with trade-off curves")
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
    correlation.add_argument("dataset", choices=_dataset_names())
    correlation.add_argument("column_a")
    correlation.add_argument("column_b")
    correlation.add_argument("--root", required=True, help="folder holding the dataset")
    correlation.add_argument("--split", default="train", choices=SPLITS)
    correlation.set_defaults(handler=_correlation)

    export = commands.add_parser("export", help="export a run's client (any noise stays inside)")
    export.add_argument("run_dir", help="a run directory written by `noisyarl run`")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", default=None,
                        help="output file (default RUN_DIR/export/client[-nonoise].onnx|.pt)")
    export.add_argument("--no-noise", action="store_true",
                        help="leave the noise out (verification only; recorded in the file)")
    export.add_argument("--int8", action="store_true",
                        help="also write an int8 client beside the ONNX file (*.int8.onnx); "
                             "the noise stays inside, in float32")
    export.add_argument("--int8-mode", choices=("static", "dynamic"), default="static",
                        help="static: calibrated on the run's training images (default); "
                             "dynamic: no calibration, usually slower")
    export.add_argument("--calibration-images", type=_positive_int, default=128,
                        help="training images the static int8 mode calibrates on")
    export.set_defaults(handler=_export)

    latency = commands.add_parser("latency",
                                  help="client latency: eager, channels_last, ONNX (fp32, int8)")
    source = latency.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?", default=None, help="a run directory")
    source.add_argument("--method", nargs="+", default=None,
                        help="untrained clients of these defences, or `all`")
    latency.add_argument("--image-size", type=_model_image_size, default=178,
                         help="input side in px, >= 16 (with --method)")
    latency.add_argument("--split", type=int, choices=range(1, 5), default=3,
                         help="K of RN18_K (with --method)")
    latency.add_argument("--sigma", type=_non_negative_float, default=1.0,
                         help="noise σ (with --method)")
    latency.add_argument("--batch-size", type=_positive_int, nargs="+", default=[1, 32])
    latency.add_argument("--runs", type=_positive_int, default=50,
                         help="timed runs per measurement (after the warm-up)")
    latency.add_argument("--warmup", type=_positive_int, default=5)
    latency.add_argument("--int8", action="store_true",
                         help="also time an int8 ONNX Runtime client (RUN_DIR/export/"
                              "client.int8.onnx is timed whenever it exists; otherwise one is "
                              "quantised in memory)")
    latency.add_argument("--json", default=None, help="also write the report to this file")
    latency.set_defaults(handler=_latency)

    serve = commands.add_parser("serve", help="host a run's utility head over HTTP")
    serve.add_argument("run_dir", help="a run directory written by `noisyarl run`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port, 1..65535")
    serve.add_argument("--max-batch", type=_positive_int, default=64)
    serve.add_argument("--token-env", default="NOISYARL_TOKEN",
                       help="environment variable holding the bearer token; when it is set, "
                            "every /v1 request must carry it (default NOISYARL_TOKEN)")
    serve.set_defaults(handler=_serve)

    study = commands.add_parser("study", help="user study of reconstructions (appendix C)")
    study_commands = study.add_subparsers(dest="study_command", required=True)
    study_build = study_commands.add_parser(
        "build", help="pick test images the upper bound gets right; write reconstructions")
    study_build.add_argument("run_dirs", nargs="+",
                             help="one upper_bound run and the defended runs to compare")
    study_build.add_argument("--out", required=True, help="study folder to create")
    study_build.add_argument("--n", type=_positive_int, default=30,
                             help="test images (balanced over the private classes)")
    study_build.add_argument("--seed", type=int, default=0)
    study_build.add_argument("--participants", type=_positive_int, default=30,
                             help="number of participant codes to generate")
    study_build.add_argument("--question", default=None,
                             help="question text (default: from the private task)")
    study_build.add_argument("--classifier-epochs", type=_positive_int, default=None,
                             help="epochs of the raw-image private classifier (default: the "
                                  "upper-bound run's attacks.leakage.epochs)")
    study_build.set_defaults(handler=_study_build)
    study_serve = study_commands.add_parser("serve", help="serve the questionnaire page")
    study_serve.add_argument("study", help="a folder written by `noisyarl study build`")
    study_serve.add_argument("--host", default="127.0.0.1")
    study_serve.add_argument("--port", type=_port, default=8000, help="TCP port, 1..65535")
    study_serve.set_defaults(handler=_study_serve)
    study_results = study_commands.add_parser("results", help="score the answers per method")
    study_results.add_argument("study", help="a folder written by `noisyarl study build`")
    study_results.set_defaults(handler=_study_results)

    demo = commands.add_parser("demo", help="the main job on generated faces")
    demo.add_argument("--quick", action="store_true",
                      help="a smaller demo (about 11 minutes on 2 cores)")
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
    except OSError as error:
        line = _os_error_line(error)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
