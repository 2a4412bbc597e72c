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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from noisyarl.attacks.base import (
    AttackResult,
    AttackSettings,
    ImageRecovery,
    LearningCurve,
    strongest_recovery,
)
from noisyarl.attacks.leakage import (
    ChanceFigures,
    LeakageAttack,
    LeakageResult,
    TestOutcomes,
    run_leakage_attack,
    test_outcomes,
)
from noisyarl.attacks.multi_query import QueryRow
from noisyarl.attacks.reconstruction import (
    ReconstructionAttack,
    ReconstructionResult,
    save_decoder,
)
from noisyarl.attacks.suite import (
    SuiteSettings,
    WorstCaseResult,
    run_worst_case,
    worst_case_markdown,
    worst_case_metrics,
)
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.builders import attack_settings as build_attack_settings
from noisyarl.builders import (
    backbone_stem,
    check_splits,
    check_task_classes,
    defence_from_config,
    load_data,
    resolve_tasks,
    task_warnings,
    training_steps,
)
from noisyarl.config import (
    AttackConfig,
    ConfigError,
    ExperimentConfig,
    config_to_dict,
    extra_attack,
    save_config,
)
from noisyarl.data.base import ImageSplit
from noisyarl.data.registry import available_labels
from noisyarl.data.tasks import Task
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.evaluation.metrics import normalised_delta
from noisyarl.evaluation.plots import plot_learning_curve, save_image_grid
from noisyarl.evaluation.report import Column, format_cell, format_table, write_report
from noisyarl.methods import Defence
from noisyarl.models.noise import SignalStats, measure_signal
from noisyarl.runners.result import DEFINITIONS, SUMMARY_COLUMNS, RunResult, table_columns
from noisyarl.runners.runs import (
    DISPLAY_ONLY,
    STUDY_SETTINGS,
    check_run_dir,
    check_writable,
    save_tasks,
    training_part,
)
from noisyarl.runtime import StepContext, describe_device, resolve_channels_last, resolve_device
from noisyarl.runtime.compile import compile_children
from noisyarl.runtime.distributed import (
    DistributedEnv,
    barrier,
    broadcast_flag,
    init_distributed,
    rank_seed,
)
from noisyarl.training.checkpoint import state_fingerprint
from noisyarl.training.loop import SIGNAL_IMAGES, FitResult, LoopSettings, fit, prune_checkpoints
from noisyarl.utils.io import (
    atomic_torch_save,
    atomic_write_text,
    read_json,
    remove_stale_temporaries,
    to_json_value,
    write_json,
)
from noisyarl.utils.seeding import PHASE_OFFSETS, seed_everything


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

    ``utility``: the utility head's test outcomes (a score per noise draw, percent or the
    task's metric, and each image's score averaged over the draws); ``leakage`` /
    ``reconstruction`` / ``worst_case``: the stages' typed results (None when a stage is
    off); ``signal``: RMS and between-image SD of the noise-free features on the test split,
    and σ_eff; ``seconds``: wall time of the whole stage; ``fresh_utility_head``: the fresh
    head trained on frozen z (``attacks.utility_head: fresh``), whose figures then are the
    headline utility; ``extra_attacks``: the results of ``attacks.extra`` by name.
    """

    utility: TestOutcomes
    leakage: LeakageResult | None
    reconstruction: ReconstructionResult | None
    worst_case: WorstCaseResult | None
    signal: SignalStats
    seconds: float
    fresh_utility_head: LeakageResult | None = None
    extra_attacks: dict[str, AttackResult] = field(default_factory=dict)

    @property
    def headline_utility(self) -> TestOutcomes:
        """The utility figures reported: the fresh head's when one was trained, else the joint
        head's."""
        fresh = self.fresh_utility_head
        if fresh is None:
            return self.utility
        return TestOutcomes(list(fresh.test_draws), list(fresh.test_per_image))

    @property
    def test_utility(self) -> float:
        """The headline utility: the mean over the test noise draws."""
        return self.headline_utility.mean

    def image_recoveries(self) -> list[ImageRecovery]:
        """Every reconstruction attack that ran (the decoder, then the extra attacks that
        reconstruct images, such as input optimisation), as :class:`ImageRecovery`."""
        results = [self.reconstruction, *self.extra_attacks.values()]
        recoveries = [result.image_recovery() for result in results if result is not None]
        return [recovery for recovery in recoveries if recovery is not None]


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
    if config.train.compile:
        compile_children(defence, context.device, skip=defence.proxy_adversaries())
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

    Every attacker sees the client through one :class:`~noisyarl.attacks.view.ZView` and
    trains until its validation score stops improving. Each attack stage's result is cached
    under ``attacks/`` with the key that made it (:func:`stage_key` plus its own settings), so
    a resumed run skips finished stages.
    """
    started = time.perf_counter()
    key = stage_key(setup.config, setup.defence)
    target = attack_target(setup)
    # The test noise draws of the utility head come from their own seed, so a resumed run
    # (which skips training) scores utility exactly as an uninterrupted one.
    torch.manual_seed(setup.config.seed + PHASE_OFFSETS["utility_test"])
    utility = test_outcomes(target.view, setup.defence.utility_head, setup.splits["test"],
                            setup.utility, attack_settings(setup, setup.config.attacks.leakage))
    fresh_head = _fresh_utility_head(setup, target)
    leakage = _leakage_stage(setup, target, key)
    reconstruction = _reconstruction_stage(setup, target, key)
    headline = fresh_head.test if fresh_head is not None else utility.mean
    worst_case = _worst_case_stage(setup, target, key, headline, leakage,
                                   reconstruction)
    extra = _extra_attack_stages(setup, target, key)
    signal = _test_signal(setup)
    return AttackOutcome(utility, leakage, reconstruction, worst_case, signal,
                         time.perf_counter() - started, fresh_head, extra)


def _fresh_utility_head(setup: ExperimentSetup, target: AttackTarget) -> LeakageResult | None:
    """With ``attacks.utility_head: fresh``, a fresh head of the proxy's architecture trained
    on frozen z for the utility task (the leakage attack's settings and early stopping)."""
    if setup.config.attacks.utility_head != "fresh":
        return None
    torch.manual_seed(setup.config.seed + PHASE_OFFSETS["utility_test"])
    head = setup.defence.make_attacker(setup.utility.num_outputs)
    return run_leakage_attack(target.view, head, setup.splits, setup.utility,
                              attack_settings(setup, setup.config.attacks.leakage),
                              name="fresh utility head")


def attack_target(setup: ExperimentSetup, context: StepContext | None = None) -> AttackTarget:
    """The trained client as every attacker sees it, with the private task and the proxy."""
    defence = setup.defence
    view = ZView.of(defence.client, defence.noise_module(), context or setup.context,
                    setup.splits["test"])
    return AttackTarget(view=view, splits=setup.splits, task=setup.private,
                        image_size=setup.config.data.image_size, proxy=defence.make_attacker)


def defence_steps(setup: ExperimentSetup) -> int:
    """Optimiser steps of the defence's training: epochs x full batches per epoch."""
    return training_steps(setup.config, len(setup.splits["train"]))


def attack_settings(setup: ExperimentSetup, attack_config: AttackConfig, *,
                    epochs: int | None = None) -> AttackSettings:
    """One attack's settings (:func:`noisyarl.builders.attack_settings`) for this run."""
    return build_attack_settings(setup.config, attack_config, defence_steps=defence_steps(setup),
                                 epochs=epochs, progress=setup.env.is_main)


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
    curves = run_dir / "attacks" / "curves"
    images = {"Reconstructions (originals on top)": run_dir / "reconstructions.png",
              "Leakage attacker's learning curve": curves / "leakage.png",
              "Reconstruction decoder's learning curve": curves / "reconstruction.png",
              **{f"Extra attack {name}": run_dir / "attacks" / f"{name}.png"
                 for name in outcome.extra_attacks}}
    write_report(
        run_dir, title=f"noisyarl run: {config.run_name()}", summary_rows=[summary_row(metrics)],
        images={k: v for k, v in images.items() if Path(v).exists()},
        notes=_notes(metrics),
        columns=table_columns(SUMMARY_COLUMNS, [RunResult.from_metrics(metrics)]),
    )
    if worst_case is not None:
        report_path = run_dir / "report.md"
        atomic_write_text(report_path,
                          report_path.read_text() + "\n" + worst_case_markdown(worst_case))
    if outcome.extra_attacks:
        report_path = run_dir / "report.md"
        atomic_write_text(report_path, report_path.read_text() + "\n"
                          + extra_attacks_markdown(outcome.extra_attacks))
    write_json(run_dir / "metrics.json", metrics)
    if config.train.keep_checkpoints == "minimal":
        prune_checkpoints(run_dir / "checkpoints")
    barrier(env)
    return metrics


def finished_run_metrics(config: ExperimentConfig, run_dir: str | Path) -> dict[str, Any] | None:
    """The metrics of a finished run in ``run_dir`` made with this very config, else None.

    Lets ``--resume`` of a comparison or sweep leave finished runs untouched (not a byte
    rewritten). Only the progress display and the study settings (the other rows of a
    comparison, the sweep, the seeds: :data:`STUDY_SETTINGS`) may differ.
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
        for section in STUDY_SETTINGS:
            values.pop(section, None)  # config_to_dict leaves a default executor out
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
        channels_last = resolve_channels_last(config.train.channels_last,
                                              config.data.image_size)
        return StepContext(device, config.train.precision, channels_last, env)
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


def _leakage_stage(setup: ExperimentSetup, target: AttackTarget,
                   key: dict[str, Any]) -> LeakageResult | None:
    """The paper's attack with the project's protocol: a fresh proxy-shaped attacker on
    frozen z, trained to a validation plateau (docs/method.md §3)."""
    attack_config = setup.config.attacks.leakage
    if not attack_config.enabled:
        return None
    settings = attack_settings(setup, attack_config)

    def compute() -> dict[str, Any]:
        result = LeakageAttack().run(target, settings)
        _save_curve(setup, "leakage", result.curve, result.chance.chance,
                    f"privacy attacker ({setup.private.label})", setup.private.metric_name)
        return result.to_dict()

    saved = _cached_stage(setup.run_dir / "attacks" / "leakage.json",
                          {**key, "attack": settings_key(settings)}, compute, setup.env)
    return LeakageResult.from_dict(saved)


def _reconstruction_stage(setup: ExperimentSetup, target: AttackTarget,
                          key: dict[str, Any]) -> ReconstructionResult | None:
    """A decoder trained to invert the frozen client; its examples, grid and weights are saved
    with the run (the weights for the user-study kit, appendix C)."""
    config, defence = setup.config, setup.defence
    attack_config = config.attacks.reconstruction
    if not attack_config.enabled or not defence.obfuscates:
        return None
    settings = attack_settings(setup, attack_config)

    def compute() -> dict[str, Any]:
        result = ReconstructionAttack().run(target, settings)
        if not setup.env.is_main:
            return result.to_dict()
        run_dir = setup.run_dir
        _save_curve(setup, "reconstruction", result.curve, result.baseline.mse,
                    "reconstruction decoder", "validation MSE", higher_is_better=False,
                    chance_label="mean-image baseline (test MSE)")
        save_image_grid(result.originals, [(defence.display_name, result.reconstructions)],
                        run_dir / "reconstructions.png")
        atomic_torch_save({"originals": result.originals,
                           "reconstructions": result.reconstructions},
                          reconstruction_examples(run_dir))
        save_decoder(result.decoder, run_dir)
        return result.to_dict()

    saved = _cached_stage(setup.run_dir / "attacks" / "reconstruction.json",
                          {**key, "attack": settings_key(settings)}, compute, setup.env)
    return ReconstructionResult.from_dict(saved)


def _worst_case_stage(setup: ExperimentSetup, target: AttackTarget, key: dict[str, Any],
                      test_utility: float, leakage: LeakageResult | None,
                      reconstruction: ReconstructionResult | None) -> WorstCaseResult | None:
    """``attacks.suite: worst_case``: the attacker suite, multi-query averaging with and without
    keyed noise, and identity leakage (:mod:`noisyarl.attacks.suite`), cached like the others.

    Under torchrun every rank runs it whole on a single-process context (its k-NN and
    re-identification need every sample's z); rank 0 writes it.
    """
    config = setup.config
    attacks = config.attacks
    if attacks.suite != "worst_case":
        return None
    env = setup.env
    if env.enabled:
        context = setup.context
        target = attack_target(setup, StepContext(context.device, context.precision,
                                                  context.channels_last))
    worst = attacks.worst_case
    suite = SuiteSettings(
        leakage=attack_settings(setup, attacks.leakage),
        reconstruction=(attack_settings(setup, attacks.reconstruction)
                        if attacks.reconstruction.enabled else None),
        identity=(attack_settings(setup, attacks.leakage, epochs=worst.identity_epochs)
                  if worst.identity else None),
        attackers=tuple(worst.attackers), queries=tuple(worst.queries),
        keyed_noise=worst.keyed_noise)

    def compute() -> dict[str, Any]:
        result = run_worst_case(setup.defence, target, setup.utility, suite,
                                test_utility=test_utility, paper_leakage=leakage,
                                paper_reconstruction=reconstruction)
        _save_worst_case_curves(setup, result)
        return result.to_dict()

    stage_settings = {**key, "worst_case": asdict(worst), "suite": {
        "leakage": settings_key(suite.leakage),
        "reconstruction": settings_key(suite.reconstruction),
        "identity": settings_key(suite.identity)}}
    saved = _cached_stage(setup.run_dir / "attacks" / "worst_case.json", stage_settings,
                          compute, env)
    return WorstCaseResult.from_dict(saved)


def _extra_attack_stages(setup: ExperimentSetup, target: AttackTarget,
                         key: dict[str, Any]) -> dict[str, AttackResult]:
    """``attacks.extra``: each named attack of :data:`noisyarl.attacks.ATTACKS`, built with
    its ``attacks.options.NAME`` and trained with ``attacks.leakage``'s settings, cached as
    ``attacks/NAME.json`` like the other stages; its figures go to ``attacks/NAME*.png``.

    Under torchrun every rank runs each whole on a single-process context (as the worst-case
    suite does); rank 0 writes the files.
    """
    names = setup.config.attacks.extra
    if not names:
        return {}
    if setup.env.enabled:
        context = setup.context
        target = attack_target(setup, StepContext(context.device, context.precision,
                                                  context.channels_last))
    settings = attack_settings(setup, setup.config.attacks.leakage)
    return {name: _extra_attack_stage(setup, target, key, name, settings) for name in names}


def _extra_attack_stage(setup: ExperimentSetup, target: AttackTarget, key: dict[str, Any],
                        name: str, settings: AttackSettings) -> AttackResult:
    """One extra attack, run once and cached with its settings and options."""
    attack = extra_attack(setup.config.attacks, name)

    def compute() -> dict[str, Any]:
        torch.manual_seed(settings.seed)
        result = attack.run(target, settings)
        if setup.env.is_main:
            result.save_figures(setup.run_dir / "attacks")
        return result.to_dict()

    stage_settings = {**key, "attack": settings_key(settings), "options": attack.options_key()}
    saved = _cached_stage(setup.run_dir / "attacks" / f"{name}.json", stage_settings, compute,
                          setup.env)
    return attack.result_type.from_dict(saved)


def extra_attacks_markdown(results: dict[str, AttackResult]) -> str:
    """The report's "Extra attacks" section: one row per attack, one column per table cell
    (:meth:`AttackResult.cells`) of any of them."""
    rows = [{"attack": name, **result.cells()} for name, result in results.items()]
    columns: list[Column] = [("attack", "attack", "{}")]
    for row in rows:
        for cell, value in row.items():
            if all(cell != known for known, _, _ in columns):
                fmt = "{:.4g}" if isinstance(value, float) else "{}"
                columns.append((cell, cell, fmt))
    return ("## Extra attacks\n\nThe attacks of `attacks.extra` (results in "
            "`attacks/NAME.json`).\n\n" + format_table(rows, columns) + "\n")


def settings_key(settings: AttackSettings | None) -> dict[str, Any] | None:
    """What an attack stage's cached result depends on: its settings without the progress
    display (a resumed run with the bar switched off reuses the stage)."""
    return None if settings is None else asdict(replace(settings, progress=False))


def _save_worst_case_curves(setup: ExperimentSetup, result: WorstCaseResult) -> None:
    """The learning curve of every attacker the worst-case suite trained."""
    private = setup.private
    for name, attacker in result.attackers.items():
        _save_curve(setup, f"worst_case_{name}", attacker.curve, attacker.chance.chance,
                    f"{name} attacker ({private.label})", private.metric_name)
    tables = [("fresh", result.fresh), ("keyed", result.keyed.rows if result.keyed else [])]
    for noise, rows in tables:
        for row in rows:
            if row.identical_queries and row.queries > 1:
                continue  # the k = 1 row's attackers, repeated
            if noise == "fresh" and row.queries == 1 and _reuses_paper_attackers(result, row):
                continue  # the paper protocol's attackers: leakage.json, reconstruction.json
            for attack, curve in row.curves().items():
                name = f"worst_case_k{row.queries}_{noise}_{attack}"
                title = f"{attack}, mean of {row.queries} {noise}-noise queries"
                if attack == "leakage":
                    _save_curve(setup, name, curve, row.privacy_chance,
                                f"{title} ({private.label})", private.metric_name)
                else:
                    _save_curve(setup, name, curve, None, title, "validation MSE",
                                higher_is_better=False)
    if result.identity is not None:
        _save_curve(setup, "worst_case_identity", result.identity.curve,
                    result.identity.nearest_neighbour["top1_chance"],
                    "re-identification metric head", "top-1 rate",
                    chance_label="chance (test split)")


def _reuses_paper_attackers(result: WorstCaseResult, row: QueryRow) -> bool:
    """Whether a fresh-noise k = 1 row reuses the paper protocol's proxy attacker (its curves
    are saved once, as ``leakage`` and ``reconstruction``)."""
    proxy = result.attackers.get("proxy")
    return proxy is not None and row.leakage_curve == proxy.curve


def _save_curve(setup: ExperimentSetup, name: str, curve: LearningCurve, chance: float | None,
                title: str, score_name: str, *, higher_is_better: bool = True,
                chance_label: str = "chance (test majority rate)") -> None:
    """``attacks/curves/NAME.json`` and ``.png``: an attacker's learning curve (rank 0)."""
    if not setup.env.is_main:
        return
    folder = setup.run_dir / "attacks" / "curves"
    write_json(folder / f"{name}.json", curve.to_dict())
    plot_learning_curve(curve.records, folder / f"{name}.png", title=title,
                        score_name=score_name, chance=chance, best_epoch=curve.best_epoch,
                        higher_is_better=higher_is_better, chance_label=chance_label)


def _test_signal(setup: ExperimentSetup) -> SignalStats:
    """RMS(h), between-image SD(h) and σ_eff of the trained client on the test split."""
    images = setup.splits["test"].images[:SIGNAL_IMAGES].float().div(255.0)
    return measure_signal(setup.defence.client, setup.defence.noise_module(),
                          images.to(setup.context.device))


def _metrics(setup: ExperimentSetup, fitted: FitResult, outcome: AttackOutcome,
             cost) -> dict[str, Any]:
    """The contents of ``metrics.json`` (read back by :class:`noisyarl.runners.result.RunResult`).
    """
    config, utility, private, splits = setup.config, setup.utility, setup.private, setup.splits
    leakage, reconstruction = outcome.leakage, outcome.reconstruction
    test = splits["test"]
    test_utility = outcome.test_utility
    utility_chance = ChanceFigures.of(test_utility, utility, test)
    accuracy_tasks = utility.higher_is_better and private.higher_is_better
    with_delta = accuracy_tasks and setup.defence.obfuscates and leakage is not None
    privacy_cells = leakage.cells() if leakage else dict.fromkeys(
        ["privacy", "privacy_sd", "privacy_valid", "privacy_paper", "privacy_last_epoch",
         "privacy_chance", "privacy_advantage", "privacy_learned"])
    privacy_cells.pop("epochs", None)
    recon_cells = reconstruction.cells() if reconstruction else dict.fromkeys(
        ["psnr", "ssim", "psnr_sd", "psnr_baseline", "ssim_baseline", "reconstruction_learned"])
    recon_cells.pop("epochs", None)
    return {
        **setup.defence.describe(),
        "run": config.run_name(),
        "utility_task": {"label": utility.label, "kind": utility.kind,
                         "metric": utility.metric_name},
        "private_task": {"label": private.label, "kind": private.kind,
                         "metric": private.metric_name},
        "utility": test_utility,
        "utility_sd": outcome.headline_utility.sd,
        "utility_draws": outcome.headline_utility.draws,
        "utility_per_image": outcome.headline_utility.per_image,
        "utility_valid": (outcome.fresh_utility_head.valid if outcome.fresh_utility_head
                          else fitted.best_valid_utility),
        "utility_head": config.attacks.utility_head,
        "utility_joint": outcome.utility.mean,
        "fresh_utility_head": (outcome.fresh_utility_head.to_dict()
                               if outcome.fresh_utility_head else None),
        "utility_chance": utility_chance.chance,
        "utility_learned": utility_chance.learned,
        "best_epoch": fitted.best_epoch,
        **privacy_cells,
        "delta": test_utility - leakage.test if with_delta else None,
        "delta_paper": test_utility - leakage.paper if with_delta else None,
        "delta_normalised": (normalised_delta(test_utility, utility_chance.chance, leakage.test,
                                              leakage.chance.chance) if with_delta else None),
        **recon_cells,
        **outcome.signal.to_dict(),
        "attack_epochs": {"leakage": leakage.curve.epochs_run if leakage else None,
                          "reconstruction": (reconstruction.curve.epochs_run
                                             if reconstruction else None)},
        "noise_draws": config.attacks.noise_draws,
        "client_cost": cost.to_dict() if hasattr(cost, "to_dict") else dict(vars(cost)),
        "client_gflops": cost.gflops,
        "seed": config.seed,
        "split_seed": config.data.split_seed,
        "stem": backbone_stem(config.data.image_size),
        "samples": {name: len(split) for name, split in splits.items()},
        "device": str(setup.context.device),
        "machine": describe_device(setup.context.device),
        "precision": config.train.precision,
        "channels_last": setup.context.channels_last,
        "torch": torch.__version__,
        "timings": {"train_seconds": fitted.train_seconds, "attack_seconds": outcome.seconds},
        "history": fitted.history,
        "leakage": leakage.to_dict() if leakage else None,
        "reconstruction": reconstruction.to_dict() if reconstruction else None,
        "world_size": setup.env.world_size,
        "warnings": setup.warnings,
        "attack_suite": config.attacks.suite,
        **worst_case_metrics(outcome.worst_case),
        "worst_case": outcome.worst_case.to_dict() if outcome.worst_case else None,
        "extra_attacks": {name: result.to_dict()
                          for name, result in outcome.extra_attacks.items()},
        "extra_attack_cells": {name: result.cells()
                               for name, result in outcome.extra_attacks.items()},
        **strongest_reconstruction_metrics(outcome.image_recoveries()),
    }


def strongest_reconstruction_metrics(recoveries: list[ImageRecovery]) -> dict[str, Any]:
    """The ``metrics.json`` keys of the strongest of several reconstruction attacks (the one
    with the largest PSNR gain over its mean-image baseline); none for fewer than two."""
    strongest = strongest_recovery(recoveries)
    if strongest is None or len(recoveries) < 2:
        return {}
    return {"reconstruction_attacks": [recovery.attack for recovery in recoveries],
            "reconstruction_strongest": strongest.attack, "psnr_strongest": strongest.psnr,
            "psnr_strongest_baseline": strongest.psnr_baseline,
            "ssim_strongest": strongest.ssim,
            "ssim_strongest_baseline": strongest.ssim_baseline,
            "reconstruction_strongest_learned": strongest.learned}


def reconstruction_examples(run_dir: str | Path, attack: str = "reconstruction") -> Path:
    """Where a run keeps the first test images and one reconstruction attack's outputs for
    them: the decoder's ``reconstruction_examples.pt``, another attack's
    ``attacks/ATTACK_examples.pt`` (written by its ``save_figures``)."""
    if attack == "reconstruction":
        return Path(run_dir) / "reconstruction_examples.pt"
    return Path(run_dir) / "attacks" / f"{attack}_examples.pt"


def save_reconstruction_grid(
    labelled_runs: list[tuple[str, Path]], path: str | Path, *,
    attacks: list[str] | None = None,
) -> Path | None:
    """Originals (top row) over the reconstructions of each run, for the same test images.

    labelled_runs: (row label, run directory); runs without a reconstruction attack are left
    out. ``attacks``: per run, the reconstruction attack whose examples to draw (named in its
    row label); default: the decoder's. Returns ``path``, or None when no run has any.
    """
    originals, rows = None, []
    for index, (label, run_dir) in enumerate(labelled_runs):
        attack = attacks[index] if attacks is not None else "reconstruction"
        if attacks is not None:
            label = f"{label} ({attack})"
        examples = reconstruction_examples(run_dir, attack)
        if examples.exists():
            saved = torch.load(examples, weights_only=True)
            originals = saved["originals"]
            rows.append((label, saved["reconstructions"]))
    if originals is None:
        return None
    return save_image_grid(originals, rows, path)


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The report/summary row of one run: :meth:`RunResult.row` of its metrics.

    A defence that sends raw images (the upper bound) has no delta, like the paper's tables.
    """
    return RunResult.from_metrics(metrics).row()


def _notes(metrics: dict[str, Any]) -> list[str]:
    """The run report's notes: warnings, device, stem, the privacy protocols, definitions."""
    result = RunResult.from_metrics(metrics)
    noise = "on" if result.noise and (result.sigma or 0) > 0 else "off"
    stem = ("cifar (3x3 stride-1 first convolution, no max-pool: inputs of at most 32 px)"
            if result.stem == "cifar" else "imagenet (7x7 stride-2 convolution, max-pool)")
    status = result.status or "ranked (no model marked as not learning)"

    def pct(value: Any, fmt: str = "{:.2f}") -> str:
        return format_cell(value, fmt)

    return [
        *(f"Warning: {message}." for message in result.warnings),
        f"Device: {result.device} ({result.machine or 'hardware not recorded'}), precision "
        f"{result.precision}; noise {noise} "
        "in training, evaluation and attacks.",
        f"ResNet stem: {stem}; train/valid split drawn with data.split_seed "
        f"{result.split_seed} where the dataset has no split column.",
        f"Privacy {pct(result.privacy)} (the attacker's test score at its best validation "
        f"epoch, mean over {pct(result.noise_draws, '{}')} test noise draws); paper protocol "
        f"(best test epoch) {pct(result.privacy_paper)}; last epoch "
        f"{pct(result.privacy_last_epoch)}.",
        f"Chance levels on the test split: utility {pct(result.utility_chance)}, privacy "
        f"{pct(result.privacy_chance)}. Status: {status}.",
        *DEFINITIONS,
    ]
