"""Open a finished (or interrupted) run directory: its config, its tasks and its trained defence.

``run_experiment`` writes ``config.yaml``, ``tasks.json`` (the two tasks' label descriptions, so
that a run can be reopened without its dataset on disk) and ``checkpoints/best.pt``. Export,
latency, the split-inference service and the user-study kit all start from :func:`load_run`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from noisyarl.config import ConfigError, ExperimentConfig, load_config
from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods import Defence
from noisyarl.training.checkpoint import load_checkpoint
from noisyarl.utils.io import read_json, write_json

TASKS_FILE = "tasks.json"


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
    from noisyarl.data.registry import available_labels
    from noisyarl.experiment import resolve_tasks

    return resolve_tasks(config, available_labels(config.data.dataset, config.data.root))


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the defence of ``run_dir`` from its config and load ``checkpoints/best.pt``.

    Raises :class:`ConfigError` when the folder is not a run directory or has no trained weights.
    """
    from noisyarl.experiment import build_experiment_defence  # late: experiment imports us

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
    defence = build_experiment_defence(config, utility, private)
    defence.load_state_dict(load_checkpoint(best)["model"])
    defence.eval()
    return LoadedRun(run_dir, config, utility, private, defence)


def _info_to_dict(info: LabelInfo) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(info).items()}


def _info_from_dict(values: dict[str, Any]) -> LabelInfo:
    return LabelInfo(**{key: tuple(value) if isinstance(value, list) else value
                        for key, value in values.items()})
