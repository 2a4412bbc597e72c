"""Run directories: checked before anything is written, and reopened once finished.

``run_experiment`` writes ``config.yaml``, ``tasks.json`` (the two tasks' label descriptions, so
that a run can be reopened without its dataset on disk) and ``checkpoints/best.pt``. Export,
latency, the split-inference service and the user-study kit all start from :func:`load_run`.

Before a run writes its first byte, :func:`check_run_dir` refuses a folder that already holds a
run (unless resumed with the same training settings) and :func:`check_writable` that ``--out``
can be created and written.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from noisyarl.builders import defence_from_config, resolve_tasks
from noisyarl.config import ConfigError, ExperimentConfig, config_to_dict, load_config
from noisyarl.data.base import LabelInfo
from noisyarl.data.registry import available_labels
from noisyarl.data.tasks import Task
from noisyarl.methods import Defence
from noisyarl.training.checkpoint import DamagedCheckpointError, load_checkpoint
from noisyarl.utils.io import read_json, write_json

TASKS_FILE = "tasks.json"
#: What makes a folder a run directory (``run`` without ``--resume`` refuses to reuse it).
RUN_MARKERS = ("config.yaml", "checkpoints", "metrics.json")
#: Config sections that say which runs a study makes (or where they execute), not what one
#: run computes.
STUDY_SETTINGS = ("compare", "sweep", "pareto", "reference", "seeds", "executor")
#: Config sections a checkpoint does not depend on: they may change on ``--resume``.
NOT_TRAINING = ("attacks", *STUDY_SETTINGS)
#: Keys of ``train`` that change neither the weights nor the results.
DISPLAY_ONLY = ("progress", "keep_checkpoints")


@dataclass
class LoadedRun:
    """A run reopened on the CPU: ``defence`` holds the best-validation weights, in eval mode."""

    run_dir: Path
    config: ExperimentConfig
    utility: Task
    private: Task
    defence: Defence

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Client input shape (3, S, S) without the batch axis."""
        size = self.config.data.image_size
        return (3, size, size)


def save_tasks(run_dir: str | Path, utility: Task, private: Task) -> Path:
    """Write ``tasks.json``: label name and :class:`LabelInfo` fields of both tasks."""
    values = {role: {"label": task.label, "info": _info_to_dict(task.info)}
              for role, task in (("utility", utility), ("private", private))}
    return write_json(Path(run_dir) / TASKS_FILE, values)


def load_tasks(run_dir: str | Path, config: ExperimentConfig) -> tuple[Task, Task]:
    """(utility, private) tasks of a run, from ``tasks.json`` or else from the dataset on disk."""
    path = Path(run_dir) / TASKS_FILE
    if path.exists():
        values = read_json(path)
        return tuple(Task(values[role]["label"], _info_from_dict(values[role]["info"]))
                     for role in ("utility", "private"))  # type: ignore[return-value]
    return resolve_tasks(config, available_labels(config.data.dataset, config.data.root))


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the defence of ``run_dir`` from its config and load ``checkpoints/best.pt``.

    Raises :class:`ConfigError` when the folder is not a run directory or has no trained weights.
    """
    run_dir = Path(run_dir)
    config_path, best = run_dir / "config.yaml", run_dir / "checkpoints" / "best.pt"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml); "
                          "give the folder that `noisyarl run --out` wrote")
    if not best.is_file():
        raise ConfigError(f"{run_dir}: no trained weights ({best} is missing); "
                          "finish the run first (`noisyarl run ... --resume`)")
    config = load_config(config_path)
    utility, private = load_tasks(run_dir, config)
    defence = defence_from_config(config, utility, private)
    try:
        weights = load_checkpoint(best)["model"]
    except DamagedCheckpointError as error:
        raise ConfigError(f"{error}: the trained weights of {run_dir} cannot be read; restore "
                          "best.pt from a copy, or train again with a new --out") from error
    defence.load_state_dict(weights)
    defence.eval()
    return LoadedRun(run_dir, config, utility, private, defence)


def training_part(config: ExperimentConfig) -> dict[str, Any]:
    """What the trained weights depend on: the config without the attacks, the study settings
    (``compare``, ``sweep``, ``reference``, ``executor``) and what only changes the display or
    the clean-up (``train.progress``, ``train.keep_checkpoints``)."""
    values = config_to_dict(config)
    for section in NOT_TRAINING:
        values.pop(section, None)  # config_to_dict leaves a default executor out
    for key in DISPLAY_ONLY:
        values["train"].pop(key)
    return values


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, current value) of every leaf that differs; a key missing on
    one side has the value ``"(unset)"`` there."""
    differences = []
    for key in sorted(set(saved) | set(current), key=str):
        name = f"{prefix}{key}"
        old, new = saved.get(key, "(unset)"), current.get(key, "(unset)")
        if isinstance(old, dict) and isinstance(new, dict):
            differences += config_differences(old, new, f"{name}.")
        elif old != new:
            differences.append((name, old, new))
    return differences


def check_run_dir(config: ExperimentConfig, run_dir: str | Path, resume: bool) -> None:
    """Refuse, before anything is written, a run directory that this run must not touch.

    Without ``resume`` a folder holding a run (``config.yaml``, ``checkpoints/`` or
    ``metrics.json``) is refused. With ``resume`` its ``config.yaml`` must agree with
    ``config`` in everything training depends on (:func:`training_part`); attack settings
    may differ (the attack stages then run again and ``config.yaml`` is rewritten).
    Raises :class:`ConfigError`; reads files only.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a folder; choose another --out")
    present = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    if not present:
        return
    if not resume:
        raise ConfigError(_refusal(run_dir, present))
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"--resume: {run_dir} holds {', '.join(present)} but no config.yaml, "
                          "so it cannot be checked against this config; choose a new --out")
    differences = config_differences(training_part(load_config(saved)), training_part(config))
    if differences:
        shown = "; ".join(f"{key}: {_show(old)} in {saved}, {_show(new)} now"
                          for key, old, new in differences)
        raise ConfigError(f"--resume: the training settings differ from the run's ({shown}); "
                          "resume with its own config, or choose a new --out (only attack "
                          "settings may change on --resume)")


def _refusal(run_dir: Path, present: list[str]) -> str:
    if "metrics.json" in present:
        return (f"{run_dir} already holds a finished run; choose a new --out for a new run "
                "(--resume with the same training settings reuses it); nothing was written")
    return (f"{run_dir} already holds an interrupted run ({', '.join(present)}): pass --resume "
            "to continue it with the same config, or choose a new --out (a finished run also "
            "needs a new --out); nothing was written")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) and value != "(unset)" else str(value)


def check_writable(run_dir: str | Path) -> None:
    """Check that ``run_dir`` can be created and written, leaving no trace: folders created
    for the check and its probe file are removed again. Raises :class:`ConfigError` naming
    the path (a parent that is a file, a read-only folder, a full disk)."""
    run_dir = Path(run_dir)
    missing, existing = [], run_dir
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {run_dir}: {existing} is a file, not a folder; "
                          "choose another --out")
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        probe = run_dir / f".write-probe.{uuid.uuid4().hex}.tmp"
        try:
            probe.write_bytes(b"probe")
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {run_dir}: cannot write there ({error.strerror or error}); "
                          "choose another --out or make it writable") from error
    finally:
        for folder in reversed(created):
            folder.rmdir()


def _info_to_dict(info: LabelInfo) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(info).items()}


def _info_from_dict(values: dict[str, Any]) -> LabelInfo:
    return LabelInfo(**{key: tuple(value) if isinstance(value, list) else value
                        for key, value in values.items()})
