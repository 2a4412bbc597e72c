"""Tasks, data and defences built from a config: the factories every runner, ``runs``,
``study`` and ``deploy`` share.

Below the runners and above the registries (:mod:`noisyarl.methods`, :mod:`noisyarl.data`):
importing a builder never imports a runner.
"""

from __future__ import annotations

import torch

from noisyarl.attacks.base import AttackSettings
from noisyarl.config import AttackConfig, ExperimentConfig
from noisyarl.data.base import SPLITS, DatasetError, ImageSplit, LabelInfo
from noisyarl.data.registry import load_splits
from noisyarl.data.tasks import Task
from noisyarl.errors import ConfigError
from noisyarl.methods import METHODS, Defence, DefenceSpec, build_defence, method_params


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


def load_data(config: ExperimentConfig, progress: bool = True) -> dict[str, ImageSplit]:
    """Decode train/valid/test of ``config.data`` (through the cache when configured).

    The train/valid split of datasets without a split column is drawn from
    ``data.split_seed``, not from the run's ``seed``: every seed of a study sees the same data.
    """
    data = config.data
    return load_splits(
        data.dataset, data.root, data.image_size,
        max_samples={"train": data.max_train, "valid": data.max_valid, "test": data.max_test},
        cache_dir=data.cache_dir, seed=data.split_seed, progress=progress,
    )


def backbone_stem(image_size: int) -> str:
    """The ResNet stem for ``image_size`` px inputs: ``cifar`` (a 3x3 stride-1 first
    convolution, no max-pool) up to 32 px, else ``imagenet`` (7x7 stride 2, then a max-pool)."""
    return "cifar" if image_size <= 32 else "imagenet"


def check_splits(splits: dict[str, ImageSplit]) -> None:
    """Every split a run needs is there and holds at least one image (DatasetError otherwise).

    An empty valid split would "select" the best epoch on nothing; an empty test split leaves
    nothing to measure utility, privacy or reconstructions on.
    """
    for name in SPLITS:
        if name not in splits:
            raise DatasetError(f"the {name} split is missing (a run needs {', '.join(SPLITS)})")
        if len(splits[name]) == 0:
            raise DatasetError(
                f"the {name} split is empty (0 images); a run needs at least one image in each "
                f"of {', '.join(SPLITS)}: check the dataset's split and data.max_{name}"
            )


def check_task_classes(split: ImageSplit, utility: Task, private: Task) -> None:
    """Each classification task has at least two classes among the train split's labels."""
    for which, task in (("utility", utility), ("private", private)):
        if task.kind == "regression":
            continue
        classes = torch.unique(split.labels[task.label]).tolist()
        if len(classes) < 2:
            raise DatasetError(
                f"tasks.{which}.label: {task.label!r} has a single class ({classes[0]}) in "
                f"the train split ({len(split)} images), so there is nothing to learn or to "
                "hide; use more training images or another label"
            )


def task_warnings(utility: Task, private: Task) -> list[str]:
    """Settings that are allowed but almost certainly a mistake, as messages."""
    if utility.label == private.label:
        return [f"tasks.utility.label and tasks.private.label are both {utility.label!r}: the "
                "defence is asked to keep and to hide the same attribute (almost certainly a "
                "mistake)"]
    return []


def defence_from_config(config: ExperimentConfig, utility: Task, private: Task) -> Defence:
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
        cifar_stem=backbone_stem(config.data.image_size) == "cifar",
    )
    try:
        return build_defence(config.method.name, spec)
    except ValueError as error:  # a task the method cannot serve, e.g. MaxEnt + regression
        raise ConfigError(f"tasks: {error}") from error


def binary_task(label: str = "label") -> Task:
    """A binary classification task (two classes), for defences built without a dataset."""
    return Task(label, LabelInfo(kind="binary"))


def untrained_defence(method: str, image_size: int, split: int = 3, sigma: float = 0.0,
                      noise: bool = True) -> Defence:
    """``method`` with fresh weights, its default params and binary utility and private tasks.

    What cost, latency and speed figures measure (they do not depend on the weights' values).
    ``sigma`` applies only to defences with a noise module (``has_noise``); the others get 0.
    """
    task = binary_task()
    defence_class = METHODS[method]
    spec = DefenceSpec(
        utility=task, private=task, split=split,
        sigma=sigma if defence_class.has_noise else 0.0, noise=noise,
        params=method_params(method, {}), image_size=image_size,
        cifar_stem=backbone_stem(image_size) == "cifar",
    )
    return build_defence(method, spec)


def training_steps(config: ExperimentConfig, train_size: int) -> int:
    """Optimiser steps of the defence's training: epochs x full batches of ``train_size``."""
    return config.train.epochs * max(train_size // config.train.batch_size, 1)


def attack_settings(config: ExperimentConfig, attack_config: AttackConfig, *,
                    defence_steps: int, epochs: int | None = None,
                    progress: bool = True) -> AttackSettings:
    """One attack's :class:`~noisyarl.attacks.base.AttackSettings` from the config: its epoch
    ceiling (``epochs`` overrides it), raised to ``defence_steps`` optimiser steps with
    ``match_defence_budget``; the test noise draws and the seed of the run."""
    return AttackSettings(
        max_epochs=epochs or attack_config.epochs, patience=attack_config.patience,
        min_steps=defence_steps if attack_config.match_defence_budget else 0,
        lr=attack_config.lr, batch_size=attack_config.batch_size,
        eval_batch_size=config.train.eval_batch_size, noise_draws=config.attacks.noise_draws,
        seed=config.seed, progress=config.train.progress and progress)
