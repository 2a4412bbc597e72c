"""Where the runs of a study execute: one after another here, or as Ray tasks on a cluster.

A comparison, a σ sweep, a Pareto grid and a seed study are grids of independent runs. Each
runner lists them as :class:`RunJob` values and hands them to :func:`execute`, which returns
every run's metrics in job order, whichever executor ran them (``executor:`` in the config,
:class:`noisyarl.config.ExecutorConfig`):

- :class:`SerialExecutor` (the default) runs them one after another in this process, on data
  decoded once, printing ``== LABEL: RUN NAME`` before each.
- :class:`RayExecutor` makes each run a Ray task that requests ``executor.cpus_per_run`` CPUs
  and ``executor.gpus_per_run`` GPUs, decodes its own data on its worker and calls
  :func:`noisyarl.runners.experiment.run_experiment`. Run directories and the data root must
  therefore be on a file system every machine shares. With ``resume`` finished runs are read
  back here without a task; the others continue from their checkpoints.

Every run is given the default executor settings, so a run's ``config.yaml``, checkpoints and
name are the same whichever executor ran it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from noisyarl.builders import load_data
from noisyarl.config import ConfigError, ExecutorConfig, ExperimentConfig
from noisyarl.data.base import ImageSplit
from noisyarl.runners.experiment import finished_run_metrics, run_experiment

#: What to install when ``executor.name: ray`` finds no Ray.
RAY_MISSING = ("executor.name: ray needs the ray package: pip install 'noisyarl[ray]' "
               "(or pip install ray)")

Metrics = dict[str, Any]
Splits = dict[str, ImageSplit]


@dataclass(frozen=True)
class RunJob:
    """One run of a study: its config (one seed), its run directory, and the row label
    printed before it (empty: the run name alone)."""

    config: ExperimentConfig
    run_dir: Path
    label: str = ""

    @property
    def name(self) -> str:
        return self.config.run_name()

    @property
    def header(self) -> str:
        """The line printed before the run: ``LABEL: RUN NAME`` or ``RUN NAME``."""
        return f"{self.label}: {self.name}" if self.label else self.name

    def run_config(self) -> ExperimentConfig:
        """The config the run itself gets: ``config`` with the default executor settings."""
        return dataclasses.replace(self.config, executor=ExecutorConfig())


class Executor(Protocol):
    def run(self, jobs: Sequence[RunJob], *, resume: bool,
            splits: Splits | None = None) -> list[Metrics]:
        """Every job's metrics, in job order."""
        ...


class RunFailedError(RuntimeError):
    """One or more runs of a study failed on their workers; the others finished."""


class SerialExecutor:
    """Today's behaviour: the jobs one after another in this process, on the same decoded
    ``splits`` (decoded from the first job's data settings when not given)."""

    def run(self, jobs: Sequence[RunJob], *, resume: bool,
            splits: Splits | None = None) -> list[Metrics]:
        if not jobs:
            return []
        first = jobs[0].config
        splits = splits or load_data(first, progress=first.train.progress)
        results = []
        for job in jobs:
            print(f"\n== {job.header}")
            results.append(run_experiment(job.run_config(), job.run_dir, resume=resume,
                                          splits=splits))
        return results


@dataclass(frozen=True)
class RayExecutor:
    """Each job a Ray task on the cluster at ``settings.address`` (or on this machine).

    ``splits`` are ignored: every task decodes its own data. A Ray instance already started
    in this process (``ray.init``) is used as it is; one started here is shut down after.
    """

    settings: ExecutorConfig

    def run(self, jobs: Sequence[RunJob], *, resume: bool,
            splits: Splits | None = None) -> list[Metrics]:
        ray = import_ray()
        results = _finished_runs(jobs) if resume else {}
        pending = [index for index in range(len(jobs)) if index not in results]
        if pending:
            with _connected(ray, self.settings.address):
                results.update(_gather(ray, jobs, self._submit(ray, jobs, pending, resume)))
        return [results[index] for index in range(len(jobs))]

    def _submit(self, ray, jobs: Sequence[RunJob], pending: list[int],
                resume: bool) -> dict[int, Any]:
        """One task per pending job, named after its run; job index -> the task's reference."""
        # no retries: a run that died half-way is continued by --resume, not by Ray
        task = ray.remote(num_cpus=self.settings.cpus_per_run,
                          num_gpus=self.settings.gpus_per_run, max_retries=0)(_run_on_worker)
        threads = max(1, math.floor(self.settings.cpus_per_run))
        refs = {}
        for index in pending:
            job = jobs[index]
            refs[index] = task.options(name=job.name).remote(job.run_config(), str(job.run_dir),
                                                             resume, threads)
            print(f"\n== {job.header}: submitted to Ray")
        return refs


def import_ray():
    """The ``ray`` module; :class:`ConfigError` naming the install command when missing."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError(RAY_MISSING) from error
    return ray


def executor_for(settings: ExecutorConfig) -> Executor:
    """The executor that ``settings.name`` names."""
    return RayExecutor(settings) if settings.name == "ray" else SerialExecutor()


def execute(jobs: Sequence[RunJob], settings: ExecutorConfig, *, resume: bool = False,
            splits: Splits | None = None) -> list[Metrics]:
    """Run every job with the executor ``settings`` name; their metrics in job order.

    ``splits``: data already decoded (the serial executor reuses it; Ray tasks decode their
    own). Raises :class:`RunFailedError` naming the runs that failed on Ray.
    """
    return executor_for(settings).run(list(jobs), resume=resume, splits=splits)


def _finished_runs(jobs: Sequence[RunJob]) -> dict[int, Metrics]:
    """Job index -> metrics of the jobs whose run has finished with this very config (read on
    this machine: the run directories are shared)."""
    finished = {}
    for index, job in enumerate(jobs):
        metrics = finished_run_metrics(job.run_config(), job.run_dir)
        if metrics is not None:
            finished[index] = metrics
    return finished


@contextmanager
def _connected(ray, address: str | None) -> Iterator[None]:
    """Inside: connected to Ray, at ``address`` (None: a cluster started on this machine,
    else a new local instance). A connection made here is closed after; one this process
    already held is kept."""
    if ray.is_initialized():
        yield
        return
    ray.init(address=address)
    try:
        yield
    finally:
        ray.shutdown()


def _run_on_worker(config: ExperimentConfig, run_dir: str, resume: bool,
                   threads: int) -> Metrics:
    """A Ray task: one run with ``threads`` CPU threads; it decodes its own data."""
    import torch

    torch.set_num_threads(threads)
    splits = load_data(config, progress=False)
    return run_experiment(config, run_dir, resume=resume, splits=splits)


def _gather(ray, jobs: Sequence[RunJob], refs: dict[int, Any]) -> dict[int, Metrics]:
    """Every task's metrics by job index, once all have ended; :class:`RunFailedError` naming
    each failed run (the first failure chained) when any failed."""
    results, failures = {}, []
    for index, ref in refs.items():
        try:
            results[index] = ray.get(ref)
        except Exception as error:  # a RayTaskError wrapping the run's own error
            failures.append((jobs[index], error))
    if failures:
        names = "; ".join(f"{job.name} ({_cause(error)})" for job, error in failures)
        raise RunFailedError(
            f"{len(failures)} of {len(refs)} runs failed on Ray: {names}. The other runs "
            "finished; fix the cause and rerun with --resume to reuse them") from failures[0][1]
    return results


def _cause(error: Exception) -> str:
    """One line for a task's error: the first line of the run's own exception, not Ray's
    traceback."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


__all__ = ["RAY_MISSING", "Executor", "RayExecutor", "RunFailedError", "RunJob",
           "SerialExecutor", "execute", "executor_for", "import_ray"]
