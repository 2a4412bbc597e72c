"""Experiment configuration: YAML files validated into typed objects.

A config is a YAML mapping whose keys mirror :class:`ExperimentConfig`. Unknown keys and bad values
(non-finite numbers, ``method.params`` the method does not take, an unknown dataset, sizes < 1)
are rejected with a :class:`ConfigError` that names the key (``method.sigma``). Command-line
overrides use dotted keys with YAML values: ``--set train.epochs=3 --set method.sigma=0.5``.

>>> config = config_from_dict({"name": "demo", "tasks": {"utility": {"label": "Smiling"},
...                                                     "private": {"label": "Male"}}})
>>> config.method.name, config.train.epochs
('noisy_arl', 5)
>>> apply_overrides(config, ["method.sigma=2"]).method.sigma
2.0
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from noisyarl.attacks import ATTACKS, Attack
from noisyarl.attacks.attackers import ATTACKERS
from noisyarl.data.registry import DATASETS
from noisyarl.errors import ConfigError
from noisyarl.evaluation.report import paper_reference_rows
from noisyarl.methods import METHODS, find_knob, method_params
from noisyarl.utils.io import atomic_write_text
from noisyarl.utils.validate import finite_number


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared.

    dataset: ``celeba`` | ``fairface`` | ``cifar10`` | ``folder``. root: the folder that holds the
    dataset's own folder (e.g. ``root/celeba/``). image_size: side of the square model input in px.
    max_train/max_valid/max_test: keep the first n rows of a split (CI-sized runs), None = all.
    cache_dir: where decoded-image caches go (None: decode in memory every run).
    split_seed: draws the train/valid split of datasets without a split column (FairFace,
    CIFAR-10, folder datasets without one); kept apart from the run's ``seed`` so that a seed
    study trains every seed on the same images.
    """

    dataset: str = "celeba"
    root: str = "data"
    image_size: int = 64
    max_train: int | None = None
    max_valid: int | None = None
    max_test: int | None = None
    cache_dir: str | None = None
    augment: bool = True
    split_seed: int = 0


@dataclass
class TaskConfig:
    """A label column and, optionally, its kind (checked against the dataset's)."""

    label: str = ""
    kind: Literal["binary", "multiclass", "regression"] | None = None


@dataclass
class TasksConfig:
    utility: TaskConfig = field(default_factory=TaskConfig)
    private: TaskConfig = field(default_factory=TaskConfig)


@dataclass
class MethodConfig:
    """The defence. split: K of RN18_K (1..4; ignored by methods without a split).

    sigma: standard deviation of the noise module (>= 0). noise: the explicit ablation switch.
    params: method-specific settings, validated by the method itself (e.g. ``lambda_adv``).
    """

    name: str = "noisy_arl"
    split: int = 3
    sigma: float = 0.0
    noise: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    def with_knob(self, key: str, value: float) -> MethodConfig:
        """A copy with trade-off knob ``key`` (``sigma`` or ``params.NAME``) set to ``value``."""
        if key.startswith("params."):
            return dataclasses.replace(self, params={**self.params,
                                                     key.removeprefix("params."): value})
        return dataclasses.replace(self, **{key: value})


@dataclass
class TrainConfig:
    """The shared adversarial training loop.

    precision: ``fp32``, ``bf16`` (autocast on CPU and CUDA) or ``fp16`` (CUDA, gradient scaler).
    device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    keep_checkpoints: what stays of ``checkpoints/`` once the run has finished: ``minimal``
    (``best.pt``, the trained weights; ``last.pt`` with its optimiser states is deleted) or
    ``all`` (``last.pt`` too).
    channels_last: images and networks in the NHWC memory format: ``auto`` (default) from
    128 px on, where it was measured faster on CPU (1.11x at 178 px; 0.81x at 64 px,
    :func:`noisyarl.runtime.resolve_channels_last`), or true / false.
    compile: the defence's networks compiled with ``torch.compile`` (inductor; needs a C++
    compiler on CPU, Triton on CUDA; warns and runs eager without one). Same noise draws as
    eager; results differ only by float rounding (:mod:`noisyarl.runtime.compile`).
    """

    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = 256
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    log_every: int = 20
    progress: bool = True
    keep_checkpoints: Literal["minimal", "all"] = "minimal"


@dataclass
class AttackConfig:
    """One attack: a fresh model trained on frozen obfuscated training images until its
    validation score stops improving (:mod:`noisyarl.attacks.base`).

    epochs: the epoch *ceiling* (early stopping usually ends sooner); patience: epochs without
    a better validation score or loss before stopping; match_defence_budget: raise the ceiling
    so that the attacker may take at least as many optimiser steps as the defence's training.
    """

    enabled: bool = True
    epochs: int = 30
    patience: int = 4
    lr: float = 1e-3
    batch_size: int = 64
    match_defence_budget: bool = True


@dataclass
class WorstCaseConfig:
    """What ``attacks.suite: worst_case`` adds (see :mod:`noisyarl.attacks.suite`).

    attackers: attribute attackers, names of :data:`noisyarl.attacks.attackers.ATTACKERS`
    (trained with ``attacks.leakage``'s epochs, lr and batch size). queries: the k of the
    multi-query table. keyed_noise: also measure the keyed-noise defence (any defence whose
    noise_module() is active, σ > 0).
    identity: run the re-identification attacks (datasets with an ``identity`` label).
    identity_epochs: epoch ceiling of the re-identification metric head (it stops on a
    validation plateau like every attacker).
    """

    attackers: list[str] = field(
        default_factory=lambda: ["proxy", "resnet18", "linear", "mlp", "knn"])
    queries: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    keyed_noise: bool = True
    identity: bool = True
    identity_epochs: int = 30


@dataclass
class AttacksConfig:
    """suite: ``paper`` (the paper's protocol: one proxy-shaped attacker, best test epoch) or
    ``worst_case`` (adds ``worst_case``: more attackers, multi-query averaging, identity; the
    older spelling ``worst-case`` is read as ``worst_case`` with a deprecation warning).
    noise_draws: test passes with fresh noise averaged into each headline figure (utility,
    privacy, PSNR/SSIM), with their spread; one pass for a client without noise.
    utility_head: whose test score is the utility: ``joint`` (the head trained with the
    client, the paper's protocol) or ``fresh`` (a fresh head of the proxy's architecture trained
    on frozen z until its validation score stops improving, with the leakage attack's settings:
    MaxEnt-ARL's authors' protocol); the other figure is kept as ``utility_joint``.
    extra: more attacks to run, names of :data:`noisyarl.attacks.ATTACKS` (e.g.
    ``[white_box, black_box, distance_correlation]``; not ``leakage`` or ``reconstruction``,
    which have their own stages), each with ``attacks.leakage``'s training settings and its
    result in ``attacks/NAME.json``. options: an extra attack's own settings by name (the
    fields of its ``options_type``, e.g. ``{white_box: {queries: 4, steps: 300}}``)."""

    leakage: AttackConfig = field(default_factory=AttackConfig)
    reconstruction: AttackConfig = field(default_factory=AttackConfig)
    noise_draws: int = 5
    suite: Literal["paper", "worst_case"] = "paper"
    utility_head: Literal["joint", "fresh"] = "joint"
    worst_case: WorstCaseConfig = field(default_factory=WorstCaseConfig)
    extra: list[str] = field(default_factory=list)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class CompareEntry:
    """One row of ``noisyarl compare``: a row label and the method that replaces ``method``.

    knob: the trade-off knob ``compare --pareto`` turns for this row (``sigma``,
    ``params.alpha``, ...); empty: the defence's first declared knob
    (:attr:`noisyarl.methods.Defence.knobs`).
    reference: compare this row's Δ with every other row's (the paired differences); when no
    row says so, the studied defence's rows with noise on (noisy ARL at σ > 0) are the
    references (:func:`noisyarl.runners.seeds.studied_rows`).
    """

    label: str = ""
    method: MethodConfig = field(default_factory=MethodConfig)
    knob: str = ""
    reference: bool = False


@dataclass
class ParetoConfig:
    """``noisyarl compare --pareto``: every row trained over a grid of its trade-off knob.

    grids: method name -> {knob key: values}, replacing that defence's declared grid; e.g.
    ``{maxent_arl: {params.alpha: [0.1, 0.3, 0.5]}}``.
    """

    grids: dict[str, dict[str, list[float]]] = field(default_factory=dict)


@dataclass
class SweepConfig:
    """``noisyarl sweep``: the noise scales to train ``method`` with (σ >= 0; 0 is plain ARL)."""

    sigmas: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0])


@dataclass
class ExecutorConfig:
    """Where the runs of a study (``compare``, ``sweep``, ``run --seeds``) execute
    (:mod:`noisyarl.runners.executor`).

    name: ``serial`` (one after another in this process, on data decoded once) or ``ray`` (each
    run a Ray task, on this machine or a cluster; needs ``pip install 'noisyarl[ray]'``).
    address: the Ray cluster to join (``auto``: the one ``ray start`` started; null: a
    cluster found on this machine, else a new local instance). cpus_per_run, gpus_per_run:
    what each Ray task requests; a run trains with ``cpus_per_run`` threads. Not a training
    setting: every run of a study gets the defaults, so the executor changes neither a run's
    results, its name nor its ``config.yaml``, and it may change on ``--resume``.
    """

    name: Literal["serial", "ray"] = "serial"
    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0


@dataclass
class ExperimentConfig:
    """One experiment: data, the utility/private task pair, a defence, training and attacks."""

    name: str = "experiment"
    seed: int = 0
    #: Train every run once per seed (``run``/``compare``/``sweep``); empty: ``seed`` alone.
    seeds: list[int] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attacks: AttacksConfig = field(default_factory=AttacksConfig)
    compare: list[CompareEntry] = field(default_factory=list)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    pareto: ParetoConfig = field(default_factory=ParetoConfig)
    #: Columns that select the paper's rows shown beside the results, e.g. ``{table: 3}``
    #: (see :func:`noisyarl.evaluation.report.paper_reference_rows`); empty: none.
    reference: dict[str, Any] = field(default_factory=dict)
    #: How a study's runs are dispatched; not part of any run (see :func:`config_to_dict`).
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def run_name(self) -> str:
        """A readable run name: ``name-method-K3-s0.5-seed0``.

        K and σ appear only for methods that have a split and a noise module
        (``name-maxent_arl-seed0``).
        """
        method = METHODS.get(self.method.name)
        parts = [self.name, self.method.name]
        if method is None or method.has_split:
            parts.append(f"K{self.method.split}")
        if method is None or method.has_noise:
            parts.append(f"s{self.method.sigma:g}" if self.method.noise else "nonoise")
        return "-".join([*parts, f"seed{self.seed}"])

    def run_seeds(self) -> list[int]:
        """The seeds to train: ``seeds`` when given, else ``[seed]``."""
        return list(self.seeds) or [self.seed]

    def with_seed(self, seed: int) -> ExperimentConfig:
        """A copy of this config that trains one run with ``seed``."""
        return dataclasses.replace(self, seed=seed, seeds=[])

    def with_method(self, method: MethodConfig) -> ExperimentConfig:
        """A copy of this config with ``method`` replaced (compare rows, sweep points)."""
        return dataclasses.replace(self, method=dataclasses.replace(method))


def _finite(value: int | float, key: str) -> float:
    """``value`` as a float; nan, inf and -inf (YAML ``.nan``, ``.inf``) are rejected."""
    try:
        return finite_number(value, key)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _reject_non_finite(value: Any, key: str) -> None:
    """Reject nan/inf anywhere inside a free-form mapping or list (``method.params``)."""
    if isinstance(value, float):
        _finite(value, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            _reject_non_finite(item, f"{key}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_non_finite(item, f"{key}[{index}]")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a type annotation; returns the converted value."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        reasons = "; ".join(error.removeprefix(f"{key}: ") for error in errors)
        raise ConfigError(f"{key}: invalid value {value!r} ({reasons})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(item, args[0], f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _reject_non_finite(value, key)
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return _finite(value, key)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, values: Any, prefix: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {
        name: _convert(values[name], hints[name], f"{prefix}.{name}" if prefix else name)
        for name in values
    }
    return cls(**kwargs)


#: Integer settings that must be >= 1 (epochs, batch sizes, intervals), by dotted key.
POSITIVE_INTS = (
    "train.epochs", "train.batch_size", "train.eval_batch_size", "train.log_every",
    "attacks.leakage.epochs", "attacks.leakage.batch_size", "attacks.leakage.patience",
    "attacks.reconstruction.epochs", "attacks.reconstruction.batch_size",
    "attacks.reconstruction.patience", "attacks.worst_case.identity_epochs",
    "attacks.noise_draws",
)
#: Seeds feed NumPy and torch generators: 0 .. 2**32 - 1 works for every one of them.
SEED_LIMIT = 2**32
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _value(config: ExperimentConfig, key: str) -> Any:
    """The value of a dotted key (``attacks.leakage.batch_size``) of ``config``."""
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _method_checks(method: MethodConfig, prefix: str) -> list[tuple[bool, str, str]]:
    return [
        (method.sigma >= 0, f"{prefix}.sigma", "must be >= 0"),
        (1 <= method.split <= 4, f"{prefix}.split", "must be in 1..4 (RN18_1..RN18_4)"),
    ]


def _check_method(method: MethodConfig, prefix: str) -> None:
    """The method exists, its params suit it, and σ > 0 only for a defence with noise."""
    try:
        method_params(method.name, method.params, prefix)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if method.sigma > 0 and not METHODS[method.name].has_noise:
        raise ConfigError(f"{prefix}.sigma: {method.name} has no noise module; leave sigma at 0")


def _worst_case_checks(worst: WorstCaseConfig) -> list[tuple[bool, str, str]]:
    unknown = [name for name in worst.attackers if name not in ATTACKERS]
    return [
        (not unknown, "attacks.worst_case.attackers",
         f"unknown attacker(s) {unknown} (known: {', '.join(ATTACKERS)})"),
        (bool(worst.attackers), "attacks.worst_case.attackers", "must name at least one"),
        (len(set(worst.attackers)) == len(worst.attackers), "attacks.worst_case.attackers",
         "must not repeat a name"),
        (bool(worst.queries) and all(k >= 1 for k in worst.queries),
         "attacks.worst_case.queries", "must be a non-empty list of integers >= 1"),
        (len(set(worst.queries)) == len(worst.queries), "attacks.worst_case.queries",
         "must not repeat a k"),
    ]


#: Attacks with a stage of their own (``attacks.leakage``, ``attacks.reconstruction``): they
#: cannot be listed in ``attacks.extra`` (their results would share ``attacks/NAME.json``).
OWN_STAGE_ATTACKS = ("leakage", "reconstruction")


def _extra_attack_checks(attacks: AttacksConfig) -> list[tuple[bool, str, str]]:
    extra_attacks = [name for name in ATTACKS if name not in OWN_STAGE_ATTACKS]
    unknown = [name for name in attacks.extra if name not in extra_attacks]
    unknown_options = [name for name in attacks.options if name not in attacks.extra]
    return [
        (not unknown, "attacks.extra",
         f"unknown attack(s) {unknown} (known: {', '.join(extra_attacks)})"),
        (len(set(attacks.extra)) == len(attacks.extra), "attacks.extra",
         "must not repeat a name"),
        (not unknown_options, "attacks.options",
         f"options for attack(s) {unknown_options} not listed in attacks.extra"),
    ]


def extra_attack(attacks: AttacksConfig, name: str) -> Attack:
    """The registered attack ``name`` with its options from ``attacks.options.NAME`` (its
    defaults where the config gives none). Raises :class:`ConfigError` on bad options."""
    attack_type = ATTACKS[name]
    values = attacks.options.get(name) or {}
    prefix = f"attacks.options.{name}"
    if attack_type.options_type is None:
        if values:
            raise ConfigError(f"{prefix}: the {name} attack takes no options")
        return attack_type()
    try:
        return attack_type(_build(attack_type.options_type, values, prefix))
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{prefix}.{error}") from error


def _data_checks(data: DataConfig) -> list[tuple[bool, str, str]]:
    checks = [
        (data.dataset in DATASETS, "data.dataset",
         f"unknown dataset {data.dataset!r} (known: {', '.join(DATASETS)})"),
        (data.image_size >= 16, "data.image_size", "must be >= 16"),
    ]
    for name in ("max_train", "max_valid", "max_test"):
        value = getattr(data, name)
        checks.append((value is None or value >= 1, f"data.{name}", "must be >= 1 or null"))
    checks.append((0 <= data.split_seed < SEED_LIMIT, "data.split_seed",
                   f"must be in 0..{SEED_LIMIT - 1}"))
    return checks


def _executor_checks(executor: ExecutorConfig, device: str) -> list[tuple[bool, str, str]]:
    return [
        (executor.cpus_per_run > 0, "executor.cpus_per_run", "must be > 0"),
        (executor.gpus_per_run >= 0, "executor.gpus_per_run", "must be >= 0"),
        (not (executor.name == "ray" and device.startswith("cuda")
              and executor.gpus_per_run == 0), "executor.gpus_per_run",
         f"train.device is {device}, so each Ray task needs a GPU: set it to 1 (or a fraction)"),
    ]


def _check_reference(reference: dict[str, Any]) -> None:
    """``reference`` must select at least one row of the paper's tables (or be empty)."""
    if not reference:
        return
    if not all(isinstance(key, str) for key in reference):
        raise ConfigError(f"reference: column names must be text, got {list(reference)}")
    try:
        rows = paper_reference_rows(**reference)
    except ValueError as error:
        raise ConfigError(f"reference: {error}") from error
    if not rows:
        raise ConfigError(f"reference: no row of the paper's tables matches {reference}")


def _check_values(config: ExperimentConfig) -> None:
    name = config.name
    checks = [
        (bool(name) and not set(name) & {"/", "\\"} and name not in (".", ".."), "name",
         "must be a non-empty name without / or \\ (it names the run directories)"),
        (0 <= config.seed < SEED_LIMIT, "seed", f"must be in 0..{SEED_LIMIT - 1}"),
        (all(0 <= seed < SEED_LIMIT for seed in config.seeds), "seeds",
         f"every seed must be in 0..{SEED_LIMIT - 1}"),
        (len(set(config.seeds)) == len(config.seeds), "seeds", "must not repeat a seed"),
        *_method_checks(config.method, "method"),
        *_data_checks(config.data),
        *[(_value(config, key) >= 1, key, "must be >= 1") for key in POSITIVE_INTS],
        (config.attacks.leakage.lr > 0, "attacks.leakage.lr", "must be > 0"),
        (config.attacks.reconstruction.lr > 0, "attacks.reconstruction.lr", "must be > 0"),
        (bool(config.tasks.utility.label), "tasks.utility.label", "is required"),
        (bool(config.tasks.private.label), "tasks.private.label", "is required"),
        (_DEVICE.fullmatch(config.train.device) is not None, "train.device",
         "must be auto, cpu, cuda or cuda:N"),
    ]
    checks += _worst_case_checks(config.attacks.worst_case)
    checks += _extra_attack_checks(config.attacks)
    checks += _executor_checks(config.executor, config.train.device)
    for index, entry in enumerate(config.compare):
        checks += _method_checks(entry.method, f"compare[{index}].method")
    checks += [(sigma >= 0, "sweep.sigmas", "every σ must be >= 0")
               for sigma in config.sweep.sigmas]
    checks.append((len(set(config.sweep.sigmas)) == len(config.sweep.sigmas), "sweep.sigmas",
                   "must not repeat a σ"))
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message}")
    _check_method(config.method, "method")
    for name in config.attacks.extra:
        extra_attack(config.attacks, name)
    for index, entry in enumerate(config.compare):
        _check_method(entry.method, f"compare[{index}].method")
    _check_reference(config.reference)
    _check_knobs(config)


def _check_knobs(config: ExperimentConfig) -> None:
    """Every compare row's knob and every Pareto grid names a declared knob of its defence,
    and every grid value gives valid settings."""
    for index, entry in enumerate(config.compare):
        if entry.knob and METHODS.get(entry.method.name) is not None:
            _knob(entry.method.name, entry.knob, f"compare[{index}].knob")
    for name, grids in config.pareto.grids.items():
        if name not in METHODS:
            raise ConfigError(f"pareto.grids.{name}: unknown method (known: "
                              f"{', '.join(METHODS)})")
        if not isinstance(grids, dict):
            raise ConfigError(f"pareto.grids.{name}: expected a mapping knob -> values")
        for key, values in grids.items():
            where = f"pareto.grids.{name}.{key}"
            _knob(name, key, where)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: expected a non-empty list of values")
            for value in values:
                _finite(value, where)
                point = MethodConfig(name=name).with_knob(key, value)
                for ok, setting, message in _method_checks(point, "method"):
                    if not ok:
                        raise ConfigError(f"{where}: {value!r}: {setting} {message}")
                try:
                    method_params(name, point.params)
                except ValueError as error:
                    raise ConfigError(f"{where}: {value!r}: {error}") from error


def _knob(name: str, key: str, where: str):
    try:
        return find_knob(name, key)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from error


#: Values renamed so that one concept has one name: old spelling -> (config key, new value).
RENAMED_VALUES = {("attacks", "suite"): {"worst-case": "worst_case"}}


def _renamed_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with old spellings of renamed values replaced, each with a warning that names
    the key and the new spelling (configs written before the rename keep working)."""
    for path, renames in RENAMED_VALUES.items():
        node: Any = values
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        old = node.get(path[-1])
        if isinstance(old, str) and old in renames:
            key = ".".join(path)
            warnings.warn(f"{key}: {old!r} is deprecated; write {renames[old]!r}",
                          FutureWarning, stacklevel=3)
            node = dict(node)
            node[path[-1]] = renames[old]
            values = _replace_at(values, path[:-1], node)
    return values


def _replace_at(values: dict[str, Any], path: tuple[str, ...], node: Any) -> dict[str, Any]:
    """A copy of ``values`` with the mapping at ``path`` replaced by ``node``."""
    if not path:
        return node
    copy = dict(values)
    copy[path[0]] = _replace_at(values[path[0]], path[1:], node)
    return copy


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Validate a plain mapping into an :class:`ExperimentConfig` (raises :class:`ConfigError`)."""
    if isinstance(values, dict):
        values = _renamed_values(values)
    config = _build(ExperimentConfig, values, "")
    _check_values(config)
    return config


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """``config`` as plain values. The ``executor`` section is left out while it holds the
    defaults: it says how a study's runs are dispatched, not what a run computes, and every
    run is given the default (:mod:`noisyarl.runners.executor`), so a run's ``config.yaml``
    and checkpoints are the same whichever executor ran it."""
    values = dataclasses.asdict(config)
    if config.executor == ExecutorConfig():
        del values["executor"]
    return values


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config file and apply ``key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return apply_overrides(config_from_dict(values), overrides or [])


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML") from error
    return key.split("."), value


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """A new config with dotted ``key=value`` overrides applied and validated."""
    values = dataclasses.asdict(config)  # every section, the default executor's too
    for text in overrides:
        path, value = parse_override(text)
        node = values
        for depth, part in enumerate(path[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(path[: depth + 1])}: unknown key in override")
            node = child
        node[path[-1]] = value
    return config_from_dict(values)


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
