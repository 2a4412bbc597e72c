"""One experiment end to end, in four explicit stages: set up -> train -> attack -> report.

``run_experiment(config, out_dir)`` is what ``noisyarl run`` calls; it runs :func:`set_up`,
:func:`train`, :func:`attack` and :func:`report` in turn (the recipe shape of torchtune, the
``train_one_epoch`` / ``evaluate`` / ``main`` split of torchvision's reference scripts). The run
directory holds: ``config.yaml`` (the resolved config), ``tasks.json`` (the tasks' label
descriptions, see :mod:`noisyarl.runners.runs`), ``checkpoints/`` (``best.pt``, the trained
weights; ``trained.pt``, the training's outcome; ``last.pt`` for ``--resume`` until the run
finishes, or kept with ``train.keep_checkpoints: all``), ``attacks/*.json`` (finished attack
stages, skipped on resume while their key holds), ``tb/`` (TensorBoard scalars),
``metrics.json``, ``report.md`` and ``reconstructions.png``.

Everything a user can get wrong (the run directory, the config, the tasks, the method's
params, precision and device, the splits) is checked in :func:`set_up` before the first file
is written.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from noisyarl.attacks.leakage import run_leakage_attack
from noisyarl.attacks.reconstruction import run_reconstruction_attack, save_decoder
from noisyarl.attacks.suite import (
    WORST_CASE_COLUMNS,
    SuiteSettings,
    run_worst_case,
    worst_case_markdown,
    worst_case_metrics,
)
from noisyarl.builders import (
    backbone_stem,
    check_splits,
    check_task_classes,
    defence_from_config,
    load_data,
    resolve_tasks,
    task_warnings,
)
from noisyarl.config import ConfigError, ExperimentConfig, config_to_dict, save_config
from noisyarl.data.base import ImageSplit
from noisyarl.data.registry import available_labels
from noisyarl.data.tasks import Task
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.evaluation.metrics import privacy_utility_delta
from noisyarl.evaluation.plots import save_image_grid
from noisyarl.evaluation.report import RESULT_COLUMNS, write_report
from noisyarl.methods import METHODS, Defence
from noisyarl.runners.runs import (
    DISPLAY_ONLY,
    check_run_dir,
    check_writable,
    save_tasks,
    training_part,
)
from noisyarl.runtime import StepContext, resolve_device
from noisyarl.runtime.distributed import (
    DistributedEnv,
    barrier,
    broadcast_flag,
    init_distributed,
    rank_seed,
)
from noisyarl.training.checkpoint import state_fingerprint
from noisyarl.training.loop import FitResult, LoopSettings, evaluate, fit, prune_checkpoints
from noisyarl.utils.io import (
    atomic_torch_save,
    atomic_write_text,
    read_json,
    remove_stale_temporaries,
    to_json_value,
    write_json,
)
from noisyarl.utils.seeding import seed_everything

SUMMARY_KEYS = ("method", "split", "sigma", "client_gflops", "utility", "privacy", "delta",
                "psnr", "ssim")


@dataclass
class ExperimentSetup:
    """What :func:`set_up` checked and built, and every later stage reads.

    ``env``: this process under torchrun (one process otherwise); ``context``: device,
    precision, memory format; ``splits``: the decoded train/valid/test splits; ``defence``: the
    configured defence, freshly initialised on ``context``'s device; ``warnings``: messages
    about allowed but suspicious settings, recorded in ``metrics.json``.
    """

    config: ExperimentConfig
    run_dir: Path
    resume: bool
    env: DistributedEnv
    context: StepContext
    splits: dict[str, ImageSplit]
    utility: Task
    private: Task
    defence: Defence
    warnings: list[str]


@dataclass
class AttackOutcome:
    """What :func:`attack` measured on the trained defence.

    ``test_utility``: the utility score on the test split (percent, or the task's metric);
    ``leakage`` / ``reconstruction`` / ``worst_case``: the stages' JSON results (None when a
    stage is off); ``seconds``: wall time of the whole stage.
    """

    test_utility: float
    leakage: dict[str, Any] | None
    reconstruction: dict[str, Any] | None
    worst_case: dict[str, Any] | None
    seconds: float


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    splits: dict[str, ImageSplit] | None = None,
) -> dict[str, Any]:
    """Train ``config``'s defence, run the attacks, write ``metrics.json`` and ``report.md``.

    ``splits`` lets a caller reuse decoded data across runs. Returns the metrics dictionary.
    With ``resume``, a finished run of the same config is returned as it is, untouched.

    Launched by ``torchrun`` with several processes, every process trains on its shard of each
    global batch (``train.batch_size`` is the global batch) and only rank 0 writes files.
    """
    run_dir = Path(out_dir) if out_dir is not None else Path("runs") / config.run_name()
    if resume and (finished := finished_run_metrics(config, run_dir)) is not None:
        return finished
    setup = set_up(config, run_dir, resume=resume, splits=splits)
    fitted = train(setup)
    outcome = attack(setup)
    return report(setup, fitted, outcome)


def set_up(config: ExperimentConfig, run_dir: Path, *, resume: bool = False,
           splits: dict[str, ImageSplit] | None = None) -> ExperimentSetup:
    """Check everything that can refuse the run, then write ``config.yaml`` and ``tasks.json``
    and build the defence from ``config.seed``.

    The checks run in the order that costs least: the run directory, device and precision,
    batch sizes, tasks and the method's params (from the label files), that ``run_dir`` is
    writable, then the decoded splits. Nothing is written to ``run_dir`` before they pass.
    """
    check_run_dir(config, run_dir, resume)
    env = init_distributed(_device(config).type)
    context = _step_context(config, env)
    _check_divisible_batches(config, env)
    if splits is not None:
        check_splits(splits)
    label_info = (splits["train"].label_info if splits is not None
                  else available_labels(config.data.dataset, config.data.root))
    utility, private = resolve_tasks(config, label_info)
    defence_from_config(config, utility, private)  # method params and tasks; discarded
    if env.is_main:
        check_writable(run_dir)
    if splits is None:
        splits = _load_data_rank0_first(config, env)
        check_splits(splits)
    utility, private = resolve_tasks(config, splits["train"].label_info)
    check_task_classes(splits["train"], utility, private)
    found = task_warnings(utility, private)
    if env.is_main:
        for message in found:
            warnings.warn(message, UserWarning, stacklevel=3)

    _prepare_run_dir(config, run_dir, resume, env)
    if env.is_main:
        save_tasks(run_dir, utility, private)
    seed_everything(config.seed)
    defence = context.prepare_module(defence_from_config(config, utility, private))
    if env.enabled:  # same initial weights everywhere (rank 0's), then a stream per rank
        seed_everything(rank_seed(config.seed, env.rank))
    return ExperimentSetup(config, run_dir, resume, env, context, splits, utility, private,
                           defence, found)


def loop_settings(config: ExperimentConfig) -> LoopSettings:
    """The shared training loop's settings from ``config.train`` and ``config.data``."""
    return LoopSettings(
        epochs=config.train.epochs, batch_size=config.train.batch_size,
        eval_batch_size=config.train.eval_batch_size, augment=config.data.augment,
        seed=config.seed, log_every=config.train.log_every, progress=config.train.progress,
    )


def train(setup: ExperimentSetup) -> FitResult:
    """Train the defence with the shared loop (:func:`noisyarl.training.loop.fit`); resumes
    from ``checkpoints/last.pt`` with ``--resume``. Leaves the best validation weights loaded."""
    writer = _tensorboard_writer(setup.run_dir) if setup.env.is_main else None
    fitted = fit(setup.defence, setup.splits, setup.utility, setup.private, setup.context,
                 loop_settings(setup.config), setup.run_dir / "checkpoints",
                 resume=setup.resume, writer=writer,
                 extra_state={"config": config_to_dict(setup.config)})
    if writer is not None:
        writer.close()
    return fitted


def attack(setup: ExperimentSetup) -> AttackOutcome:
    """Score utility on the test split and run the configured attacks on the frozen client.

    Each attack stage's result is cached under ``attacks/`` with the key that made it
    (:func:`stage_key` plus its own settings), so a resumed run skips finished stages.
    """
    started = time.perf_counter()
    key = stage_key(setup.config, setup.defence)
    test_utility = evaluate(setup.defence, setup.splits["test"], setup.utility, setup.context,
                            setup.config.train.eval_batch_size)
    leakage = _leakage_stage(setup, key)
    reconstruction = _reconstruction_stage(setup, key)
    worst_case = _worst_case_stage(setup, key, test_utility, leakage, reconstruction)
    return AttackOutcome(test_utility, leakage, reconstruction, worst_case,
                         time.perf_counter() - started)


def report(setup: ExperimentSetup, fitted: FitResult, outcome: AttackOutcome) -> dict[str, Any]:
    """Measure the client's cost and write ``report.md`` and, last, ``metrics.json`` (a run
    directory with ``metrics.json`` is finished); prune checkpoints unless kept. Returns the
    metrics dictionary (on every rank; only rank 0 writes)."""
    config, env = setup.config, setup.env
    size = config.data.image_size
    cost = measure_client_cost(setup.defence.client.cpu(), (3, size, size))
    metrics = _metrics(setup, fitted, outcome, cost)
    if not env.is_main:
        barrier(env)  # returns once rank 0 has written metrics.json
        return metrics
    run_dir, worst_case = setup.run_dir, outcome.worst_case
    images = {"Reconstructions (originals on top)": run_dir / "reconstructions.png"}
    write_report(
        run_dir, title=f"noisyarl run: {config.run_name()}", summary_rows=[summary_row(metrics)],
        images={k: v for k, v in images.items() if Path(v).exists()},
        notes=_notes(metrics),
        columns=RESULT_COLUMNS + (WORST_CASE_COLUMNS if worst_case else []),
    )
    if worst_case is not None:
        report_path = run_dir / "report.md"
        atomic_write_text(report_path,
                          report_path.read_text() + "\n" + worst_case_markdown(worst_case))
    write_json(run_dir / "metrics.json", metrics)
    if config.train.keep_checkpoints == "minimal":
        prune_checkpoints(run_dir / "checkpoints")
    barrier(env)
    return metrics


def finished_run_metrics(config: ExperimentConfig, run_dir: str | Path) -> dict[str, Any] | None:
    """The metrics of a finished run in ``run_dir`` made with this very config, else None.

    Lets ``--resume`` of a comparison or sweep leave finished runs untouched (not a byte
    rewritten). Only the progress display may differ.
    """
    run_dir = Path(run_dir)
    metrics_path, saved = run_dir / "metrics.json", run_dir / "config.yaml"
    if not (metrics_path.exists() and saved.exists()):
        return None
    from noisyarl.config import load_config

    def comparable(values: ExperimentConfig) -> dict[str, Any]:
        values = config_to_dict(values)
        for key in DISPLAY_ONLY:
            values["train"].pop(key)
        return values

    if comparable(load_config(saved)) != comparable(config):
        return None
    return read_json(metrics_path)


def _device(config: ExperimentConfig, local_rank: int = 0) -> torch.device:
    try:
        return resolve_device(config.train.device, local_rank)
    except RuntimeError as error:  # cuda asked for, none present
        raise ConfigError(f"train.device: {error}") from error


def _step_context(config: ExperimentConfig, env: DistributedEnv) -> StepContext:
    device = _device(config, env.local_rank)
    try:
        return StepContext(device, config.train.precision, config.train.channels_last, env)
    except ValueError as error:
        raise ConfigError(f"train.precision: {error}") from error


def _check_divisible_batches(config: ExperimentConfig, env: DistributedEnv) -> None:
    """Under torchrun every global training batch is split evenly over the processes."""
    if not env.enabled:
        return
    sizes = {"train.batch_size": config.train.batch_size,
             "attacks.leakage.batch_size": config.attacks.leakage.batch_size,
             "attacks.reconstruction.batch_size": config.attacks.reconstruction.batch_size}
    for key, size in sizes.items():
        if size % env.world_size:
            raise ConfigError(f"{key}: {size} is the global batch and must be divisible by the "
                              f"{env.world_size} processes torchrun started")


def _load_data_rank0_first(config: ExperimentConfig, env: DistributedEnv):
    """Decode the splits; with a cache under torchrun rank 0 builds it and the others read it."""
    if not (env.enabled and config.data.cache_dir):
        return load_data(config, progress=config.train.progress and env.is_main)
    splits = load_data(config, progress=config.train.progress) if env.is_main else None
    barrier(env)
    return splits or load_data(config, progress=False)


def _prepare_run_dir(config: ExperimentConfig, run_dir: Path, resume: bool,
                     env: DistributedEnv | None = None) -> None:
    """Write ``config.yaml`` (rank 0 only under torchrun) once every check has passed, and
    drop the temporary files of writes that a killed run left unfinished.

    On ``--resume`` :func:`noisyarl.runners.runs.check_run_dir` has accepted the config (same
    training settings), so rewriting ``config.yaml`` changes at most its attack settings.
    """
    env = env or DistributedEnv()
    if not env.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        remove_stale_temporaries(run_dir)
    save_config(config, run_dir / "config.yaml")


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"))


def stage_key(config: ExperimentConfig, defence: Defence) -> dict[str, Any]:
    """What every attack stage depends on besides its own settings: the training part of the
    config (:func:`noisyarl.runners.runs.training_part`) and a fingerprint of the trained
    weights."""
    return {"training": training_part(config), "weights": state_fingerprint(defence)}


def _cached_stage(path: Path, settings: dict[str, Any], compute,
                  env: DistributedEnv | None = None) -> dict[str, Any]:
    """Run an attack stage once; its JSON result, saved with the key that made it (the
    stage's settings, the training settings and the weights' fingerprint), lets a resumed run
    skip it while that whole key holds. Any difference recomputes the stage.

    Under torchrun rank 0 decides (every rank follows) and alone writes the result.
    """
    env = env or DistributedEnv()
    settings = to_json_value(settings)
    saved = read_json(path) if path.exists() else {}
    if broadcast_flag(saved.get("settings") == settings, env):
        return saved["result"] if saved else read_json(path)["result"]
    result = compute()
    if env.is_main:
        write_json(path, {"settings": settings, "result": result})
    return result


def _leakage_stage(setup: ExperimentSetup, key: dict[str, Any]) -> dict[str, Any] | None:
    """The paper's privacy figure: a fresh attacker on frozen z (docs/method.md §3)."""
    config, context = setup.config, setup.context
    settings = config.attacks.leakage
    if not settings.enabled:
        return None

    def compute() -> dict[str, Any]:
        attacker = setup.defence.make_attacker(setup.private.num_outputs)
        result = run_leakage_attack(
            setup.defence.client, attacker, setup.splits, setup.private, context,
            epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
            eval_batch_size=config.train.eval_batch_size, seed=config.seed,
            progress=config.train.progress and context.distributed.is_main,
        )
        return result.to_dict()

    return _cached_stage(setup.run_dir / "attacks" / "leakage.json",
                         {**key, "attack": asdict(settings)}, compute, context.distributed)


def _reconstruction_stage(setup: ExperimentSetup, key: dict[str, Any]) -> dict[str, Any] | None:
    """A decoder trained to invert the frozen client; its examples, grid and weights are saved
    with the run (the weights for the user-study kit, appendix C)."""
    config, context, defence = setup.config, setup.context, setup.defence
    settings = config.attacks.reconstruction
    if not settings.enabled or not defence.obfuscates:
        return None

    def compute() -> dict[str, Any]:
        result = run_reconstruction_attack(
            defence.client, setup.splits, context, image_size=config.data.image_size,
            epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
            eval_batch_size=config.train.eval_batch_size, seed=config.seed,
            progress=config.train.progress and context.distributed.is_main,
        )
        if not context.distributed.is_main:
            return result.to_dict()
        run_dir = setup.run_dir
        save_image_grid(result.originals, [(defence.name, result.reconstructions)],
                        run_dir / "reconstructions.png")
        atomic_torch_save({"originals": result.originals,
                           "reconstructions": result.reconstructions},
                          run_dir / "reconstruction_examples.pt")
        save_decoder(result.decoder, run_dir)
        return result.to_dict()

    return _cached_stage(setup.run_dir / "attacks" / "reconstruction.json",
                         {**key, "attack": asdict(settings)}, compute, context.distributed)


def _worst_case_stage(setup: ExperimentSetup, key: dict[str, Any], test_utility: float,
                      leakage: dict[str, Any] | None,
                      reconstruction: dict[str, Any] | None) -> dict[str, Any] | None:
    """``attacks.suite: worst_case``: the attacker suite, multi-query averaging with and without
    keyed noise, and identity leakage (:mod:`noisyarl.attacks.suite`), cached like the others.

    Under torchrun every rank runs it whole on a single-process context (its k-NN and
    re-identification need every sample's z); rank 0 writes it.
    """
    config = setup.config
    attacks = config.attacks
    if attacks.suite != "worst_case":
        return None
    context, env = setup.context, setup.env
    if env.enabled:
        context = StepContext(context.device, context.precision, context.channels_last)
    recon = asdict(attacks.reconstruction) if attacks.reconstruction.enabled else None
    for settings in (recon, leakage_settings := asdict(attacks.leakage)):
        if settings is not None:
            settings.pop("enabled")
    suite = SuiteSettings(
        leakage=leakage_settings, reconstruction=recon,
        attackers=tuple(attacks.worst_case.attackers), queries=tuple(attacks.worst_case.queries),
        keyed_noise=attacks.worst_case.keyed_noise, identity=attacks.worst_case.identity,
        identity_epochs=attacks.worst_case.identity_epochs, image_size=config.data.image_size,
        eval_batch_size=config.train.eval_batch_size, seed=config.seed,
        progress=config.train.progress and env.is_main,
    )

    def compute() -> dict[str, Any]:
        return run_worst_case(setup.defence, setup.splits, setup.utility, setup.private,
                              context, suite, test_utility=test_utility,
                              paper_leakage=leakage, paper_reconstruction=reconstruction)

    stage_settings = {**key, "worst_case": asdict(attacks.worst_case),
                      "leakage": asdict(attacks.leakage),
                      "reconstruction": asdict(attacks.reconstruction)}
    return _cached_stage(setup.run_dir / "attacks" / "worst_case.json", stage_settings, compute,
                         env)


def _metrics(setup: ExperimentSetup, fitted: FitResult, outcome: AttackOutcome,
             cost) -> dict[str, Any]:
    """The contents of ``metrics.json``."""
    config, utility, private, splits = setup.config, setup.utility, setup.private, setup.splits
    leakage, reconstruction = outcome.leakage, outcome.reconstruction
    test_utility = outcome.test_utility
    privacy = leakage["test_best"] if leakage else None
    delta = None
    if privacy is not None and utility.higher_is_better and private.higher_is_better:
        delta = privacy_utility_delta(test_utility, privacy)
    return {
        **setup.defence.describe(),
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
        "split_seed": config.data.split_seed,
        "stem": backbone_stem(config.data.image_size),
        "samples": {name: len(split) for name, split in splits.items()},
        "device": str(setup.context.device),
        "precision": config.train.precision,
        "channels_last": config.train.channels_last,
        "torch": torch.__version__,
        "timings": {"train_seconds": fitted.train_seconds, "attack_seconds": outcome.seconds},
        "history": fitted.history,
        "leakage": leakage,
        "reconstruction": reconstruction,
        "world_size": setup.env.world_size,
        "warnings": setup.warnings,
        "attack_suite": config.attacks.suite,
        **worst_case_metrics(outcome.worst_case),
        "worst_case": outcome.worst_case,
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

    A defence that sends raw images (the upper bound) has no delta, like the paper's tables.
    """
    row = {key: metrics.get(key) for key in SUMMARY_KEYS}
    if metrics.get("privacy_worst_case") is not None:  # attacks.suite: worst_case
        row.update({key: metrics.get(key) for key, _, _ in WORST_CASE_COLUMNS})
    defence = METHODS.get(metrics.get("method"))
    if defence is not None and not defence.obfuscates:
        row["delta"] = None
    return row


def _notes(metrics: dict[str, Any]) -> list[str]:
    noise = "on" if metrics["noise"] and metrics["sigma"] > 0 else "off"
    stem = ("cifar (3x3 stride-1 first convolution, no max-pool: inputs of at most 32 px)"
            if metrics["stem"] == "cifar" else "imagenet (7x7 stride-2 convolution, max-pool)")
    return [
        *(f"Warning: {message}." for message in metrics.get("warnings", [])),
        f"Device: {metrics['device']}, precision {metrics['precision']}; noise {noise} "
        "in training, evaluation and attacks.",
        f"ResNet stem: {stem}; train/valid split drawn with data.split_seed "
        f"{metrics['split_seed']} where the dataset has no split column.",
        "Privacy = best-test-epoch accuracy of a fresh attacker on frozen z (paper protocol); "
        f"last epoch {metrics['privacy_last_epoch']}, at best validation epoch "
        f"{metrics['privacy_at_best_valid']}.",
        f"Chance levels on the test split: utility {metrics['chance']['utility']:.2f}, "
        f"privacy {metrics['chance']['privacy']:.2f}.",
    ]
