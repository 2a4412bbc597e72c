"""One experiment end to end: data -> defence training -> attacks -> metrics and report.

``run_experiment(config, out_dir)`` is what ``noisyarl run`` calls. The run directory holds:
``config.yaml`` (the resolved config), ``tasks.json`` (the tasks' label descriptions, see
:mod:`noisyarl.runs`), ``checkpoints/`` (``last.pt`` for ``--resume``,
``best.pt``), ``attacks/*.json`` (finished attack stages, skipped on resume), ``tb/`` (TensorBoard
scalars), ``metrics.json``, ``report.md`` and ``reconstructions.png``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from noisyarl.attacks import run_leakage_attack, run_reconstruction_attack
from noisyarl.config import ConfigError, ExperimentConfig, config_to_dict, save_config
from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.registry import available_labels, load_splits
from noisyarl.data.tasks import Task
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.evaluation.metrics import privacy_utility_delta
from noisyarl.evaluation.plots import save_image_grid
from noisyarl.evaluation.report import write_report
from noisyarl.methods import METHODS, Defence, DefenceSpec, build_defence, method_params
from noisyarl.runs import save_tasks
from noisyarl.training.loop import LoopSettings, evaluate, fit
from noisyarl.training.precision import StepContext, resolve_device
from noisyarl.utils.io import atomic_torch_save, read_json, write_json
from noisyarl.utils.seeding import seed_everything

SUMMARY_KEYS = ("method", "split", "sigma", "client_gflops", "utility", "privacy", "delta",
                "psnr", "ssim")


def resolve_task(which: str, label: str, kind: str | None,
                 label_info: dict[str, LabelInfo]) -> Task:
    """The :class:`Task` for ``tasks.<which>``; unknown labels and kind mismatches are errors."""
    if label not in label_info:
        known = ", ".join(sorted(label_info))
        raise ConfigError(f"tasks.{which}.label: unknown label {label!r} (known: {known})")
    info = label_info[label]
    if kind is not None and kind != info.kind:
        raise ConfigError(
            f"tasks.{which}.kind: {kind!r} does not match label {label!r}, which is {info.kind}"
        )
    return Task(label, info)


def resolve_tasks(config: ExperimentConfig, label_info: dict[str, LabelInfo]) -> tuple[Task, Task]:
    """(utility task, private task) of ``config``, checked against the dataset's labels."""
    utility = resolve_task("utility", config.tasks.utility.label, config.tasks.utility.kind,
                           label_info)
    private = resolve_task("private", config.tasks.private.label, config.tasks.private.kind,
                           label_info)
    return utility, private


def load_experiment_data(config: ExperimentConfig, progress: bool = True) -> dict[str, ImageSplit]:
    """Decode train/valid/test of ``config.data`` (through the cache when configured)."""
    data = config.data
    return load_splits(
        data.dataset, data.root, data.image_size,
        max_samples={"train": data.max_train, "valid": data.max_valid, "test": data.max_test},
        cache_dir=data.cache_dir, seed=config.seed, progress=progress,
    )


def build_experiment_defence(config: ExperimentConfig, utility: Task, private: Task) -> Defence:
    """The configured defence, with its method-specific params validated."""
    try:
        params = method_params(config.method.name, config.method.params)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if not METHODS[config.method.name].has_noise and config.method.sigma > 0:
        raise ConfigError(f"method.sigma: {config.method.name} has no noise module; "
                          "leave sigma at 0")
    spec = DefenceSpec(
        utility=utility, private=private, split=config.method.split, sigma=config.method.sigma,
        noise=config.method.noise, params=params, image_size=config.data.image_size,
        cifar_stem=config.data.image_size <= 32,
    )
    try:
        return build_defence(config.method.name, spec)
    except ValueError as error:  # a task the method cannot serve, e.g. MaxEnt + regression
        raise ConfigError(f"tasks: {error}") from error


def _prepare_run_dir(config: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    saved = run_dir / "config.yaml"
    if resume and saved.exists():
        from noisyarl.config import load_config

        if _training_part(load_config(saved)) != _training_part(config):
            raise ConfigError(
                f"--resume: data, tasks, method or training differ from the config in {saved}"
            )
    elif (run_dir / "metrics.json").exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a finished run; choose a new --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, saved)


def _training_part(config: ExperimentConfig) -> dict[str, Any]:
    """What a checkpoint depends on: everything but the attacks, the study settings (``compare``,
    ``sweep``, ``reference``) and the progress display.

    Resuming with other attack settings is allowed (attack stages rerun when theirs changed).
    """
    values = config_to_dict(config)
    for study_only in ("attacks", "compare", "sweep", "reference"):
        values.pop(study_only)
    values["train"].pop("progress")
    return values


def _cached_stage(path: Path, settings: dict[str, Any], compute) -> dict[str, Any]:
    """Run an attack stage once; its JSON result (with the settings that made it) lets a resumed
    run skip it, unless the stage's settings changed."""
    if path.exists():
        saved = read_json(path)
        if saved.get("settings") == settings:
            return saved["result"]
    result = compute()
    write_json(path, {"settings": settings, "result": result})
    return result


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    splits: dict[str, ImageSplit] | None = None,
) -> dict[str, Any]:
    """Train ``config``'s defence, run both attacks, write ``metrics.json`` and ``report.md``.

    ``splits`` lets a caller reuse decoded data across runs. Returns the metrics dictionary.
    """
    run_dir = Path(out_dir) if out_dir is not None else Path("runs") / config.run_name()
    if splits is None:
        label_info = available_labels(config.data.dataset, config.data.root)
        resolve_tasks(config, label_info)  # fail on a bad label before decoding any image
        splits = load_experiment_data(config, progress=config.train.progress)
    utility, private = resolve_tasks(config, splits["train"].label_info)
    _prepare_run_dir(config, run_dir, resume)
    save_tasks(run_dir, utility, private)

    seed_everything(config.seed)
    device = resolve_device(config.train.device)
    context = StepContext(device, config.train.precision, config.train.channels_last)
    defence = context.prepare_module(build_experiment_defence(config, utility, private))
    settings = LoopSettings(
        epochs=config.train.epochs, batch_size=config.train.batch_size,
        eval_batch_size=config.train.eval_batch_size, augment=config.data.augment,
        seed=config.seed, log_every=config.train.log_every, progress=config.train.progress,
    )
    writer = _tensorboard_writer(run_dir)
    fitted = fit(defence, splits, utility, private, context, settings, run_dir / "checkpoints",
                 resume=resume, writer=writer, extra_state={"config": config_to_dict(config)})
    if writer is not None:
        writer.close()

    started = time.perf_counter()
    test_utility = evaluate(defence, splits["test"], utility, context, settings.eval_batch_size)
    leakage = _leakage_stage(config, defence, splits, private, context, run_dir)
    reconstruction = _reconstruction_stage(config, defence, splits, context, run_dir)
    attack_seconds = time.perf_counter() - started

    cost = measure_client_cost(defence.client.cpu(), (3, config.data.image_size,
                                                      config.data.image_size))
    metrics = _metrics(config, defence, utility, private, splits, fitted, test_utility,
                       leakage, reconstruction, cost, device, attack_seconds)
    write_json(run_dir / "metrics.json", metrics)
    images = {"Reconstructions (originals on top)": run_dir / "reconstructions.png"}
    write_report(
        run_dir, title=f"noisyarl run: {config.run_name()}", summary_rows=[summary_row(metrics)],
        images={k: v for k, v in images.items() if Path(v).exists()},
        notes=_notes(metrics),
    )
    return metrics


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"))


def _leakage_stage(config, defence, splits, private, context, run_dir) -> dict[str, Any] | None:
    attack = config.attacks.leakage
    if not attack.enabled:
        return None

    def compute() -> dict[str, Any]:
        attacker = defence.make_attacker(private.num_outputs)
        result = run_leakage_attack(
            defence.client, attacker, splits, private, context, epochs=attack.epochs,
            lr=attack.lr, batch_size=attack.batch_size,
            eval_batch_size=config.train.eval_batch_size, seed=config.seed,
            progress=config.train.progress,
        )
        return result.to_dict()

    return _cached_stage(run_dir / "attacks" / "leakage.json", asdict(attack), compute)


def _reconstruction_stage(config, defence, splits, context, run_dir) -> dict[str, Any] | None:
    attack = config.attacks.reconstruction
    if not attack.enabled or not defence.obfuscates:
        return None

    def compute() -> dict[str, Any]:
        result = run_reconstruction_attack(
            defence.client, splits, context, image_size=config.data.image_size,
            epochs=attack.epochs, lr=attack.lr, batch_size=attack.batch_size,
            eval_batch_size=config.train.eval_batch_size, seed=config.seed,
            progress=config.train.progress,
        )
        save_image_grid(result.originals, [(defence.name, result.reconstructions)],
                        run_dir / "reconstructions.png")
        atomic_torch_save({"originals": result.originals,
                           "reconstructions": result.reconstructions},
                          run_dir / "reconstruction_examples.pt")
        return result.to_dict()

    return _cached_stage(run_dir / "attacks" / "reconstruction.json", asdict(attack), compute)


def _metrics(config, defence, utility, private, splits, fitted, test_utility, leakage,
             reconstruction, cost, device, attack_seconds) -> dict[str, Any]:
    privacy = leakage["test_best"] if leakage else None
    delta = None
    if privacy is not None and utility.higher_is_better and private.higher_is_better:
        delta = privacy_utility_delta(test_utility, privacy)
    return {
        **defence.describe(),
        "run": config.run_name(),
        "utility_task": {"label": utility.label, "kind": utility.kind,
                         "metric": utility.metric_name},
        "private_task": {"label": private.label, "kind": private.kind,
                         "metric": private.metric_name},
        "utility": test_utility,
        "utility_valid": fitted.best_valid_utility,
        "best_epoch": fitted.best_epoch,
        "privacy": privacy,
        "privacy_last_epoch": leakage["test_last"] if leakage else None,
        "privacy_at_best_valid": leakage["test_at_best_valid"] if leakage else None,
        "privacy_valid": leakage["valid_best"] if leakage else None,
        "delta": delta,
        "psnr": reconstruction["psnr"] if reconstruction else None,
        "ssim": reconstruction["ssim"] if reconstruction else None,
        "chance": {
            "utility": utility.chance_level(splits["test"].labels[utility.label]),
            "privacy": private.chance_level(splits["test"].labels[private.label]),
        },
        "client_cost": cost.to_dict() if hasattr(cost, "to_dict") else dict(vars(cost)),
        "client_gflops": cost.gflops,
        "seed": config.seed,
        "samples": {name: len(split) for name, split in splits.items()},
        "device": str(device),
        "precision": config.train.precision,
        "channels_last": config.train.channels_last,
        "torch": torch.__version__,
        "timings": {"train_seconds": fitted.train_seconds, "attack_seconds": attack_seconds},
        "history": fitted.history,
        "leakage": leakage,
        "reconstruction": reconstruction,
    }


def save_reconstruction_grid(
    labelled_runs: list[tuple[str, Path]], path: str | Path
) -> Path | None:
    """Originals (top row) over the reconstructions of each run, for the same test images.

    labelled_runs: (row label, run directory); runs without a reconstruction attack are left
    out. Returns ``path``, or None when no run has reconstructions.
    """
    originals, rows = None, []
    for label, run_dir in labelled_runs:
        examples = Path(run_dir) / "reconstruction_examples.pt"
        if examples.exists():
            saved = torch.load(examples, weights_only=True)
            originals = saved["originals"]
            rows.append((label, saved["reconstructions"]))
    if originals is None:
        return None
    return save_image_grid(originals, rows, path)


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The report/summary columns of one run.

    The upper bound sends raw images: like the paper's tables, its row has no delta.
    """
    row = {key: metrics.get(key) for key in SUMMARY_KEYS}
    if metrics.get("method") == "upper_bound":
        row["delta"] = None
    return row


def _notes(metrics: dict[str, Any]) -> list[str]:
    noise = "on" if metrics["noise"] and metrics["sigma"] > 0 else "off"
    return [
        f"Device: {metrics['device']}, precision {metrics['precision']}; noise {noise} "
        "in training, evaluation and attacks.",
        "Privacy = best-test-epoch accuracy of a fresh attacker on frozen z (paper protocol); "
        f"last epoch {metrics['privacy_last_epoch']}, at best validation epoch "
        f"{metrics['privacy_at_best_valid']}.",
        f"Chance levels on the test split: utility {metrics['chance']['utility']:.2f}, "
        f"privacy {metrics['chance']['privacy']:.2f}.",
    ]
