"""The generators' shared worker-pool core: ordered results whatever the number of processes,
worker-count resolution, the start-method fallback and the progress bar."""

from __future__ import annotations

import multiprocessing
import operator
import os
import threading
import time
import warnings

import numpy as np
import pytest

from noisyarl.synthetic import workers
from noisyarl.synthetic.workers import (
    balanced_chunksize,
    ordered_map,
    resolve_workers,
    with_progress,
    worker_pool,
)


def _slow_square(job: int) -> tuple[int, int, int]:
    """(job, job squared, pid); early jobs sleep longest, so a pool finishes them last."""
    time.sleep(0.01 * (8 - job) if job < 8 else 0.0)
    return job, job * job, os.getpid()


def _rng_draws(seed: int) -> np.ndarray:
    """What a render job does: draw from an RNG seeded by the job alone."""
    return np.random.default_rng(seed).integers(0, 256, size=64, dtype=np.uint8)


@pytest.mark.parametrize(("count", "chunksize"), [(2, 1), (2, 3), (3, 2)])
def test_pool_results_come_back_in_job_order(count, chunksize):
    results = list(ordered_map(_slow_square, list(range(10)), count, chunksize))
    assert [(job, square) for job, square, _ in results] == [(k, k * k) for k in range(10)]
    assert os.getpid() not in {pid for _, _, pid in results}  # drawn in worker processes


def test_one_worker_and_several_workers_give_identical_output():
    seeds = list(range(20))
    serial = np.stack(list(ordered_map(_rng_draws, seeds, 1)))
    parallel = np.stack(list(ordered_map(_rng_draws, seeds, 2, chunksize=3)))
    assert serial.tobytes() == parallel.tobytes()


@pytest.mark.parametrize(("count", "jobs"), [(1, [0, 1, 2]), (0, [0, 1]), (4, [3])])
def test_one_worker_or_a_single_job_runs_in_this_process(count, jobs):
    results = list(ordered_map(_slow_square, jobs, count))
    assert [job for job, _, _ in results] == jobs
    assert {pid for _, _, pid in results} == {os.getpid()}


class _RecordingPool:
    """Stands in for a process pool: maps in this process, records when it opens and closes."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        events.append("open")

    def __enter__(self) -> _RecordingPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.events.append("close")

    def imap(self, function, jobs, chunksize):
        return map(function, jobs)


def test_the_pool_opens_on_the_first_result_and_closes_when_the_iterator_is_closed(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(workers, "worker_pool", lambda count: _RecordingPool(events))
    results = ordered_map(operator.neg, [1, 2, 3], 2)
    assert events == []
    assert next(results) == -1 and events == ["open"]
    results.close()
    assert events == ["open", "close"]


def test_explicit_worker_counts_are_used_and_clamped_to_one():
    assert resolve_workers(3, num_items=1, pool_threshold=400) == 3
    assert resolve_workers(0, num_items=10_000, pool_threshold=400) == 1
    assert resolve_workers(-2, num_items=10_000, pool_threshold=400) == 1


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 2), (16, 2), (None, 1)])
def test_default_worker_count_follows_the_cpus_from_the_threshold_on(monkeypatch, cpus, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert resolve_workers(None, num_items=399, pool_threshold=400) == 1
    assert resolve_workers(None, num_items=400, pool_threshold=400) == expected


def test_chunksize_gives_about_eight_chunks_per_process_within_bounds():
    assert balanced_chunksize(0, 2) == 1
    assert balanced_chunksize(15, 2) == 1
    assert balanced_chunksize(160, 2) == 10
    assert balanced_chunksize(10_000, 2) == 64


def test_pool_falls_back_to_spawn_where_fork_is_missing(monkeypatch):
    methods = []
    real_get_context = multiprocessing.get_context

    def recording_get_context(method):
        methods.append(method)
        return real_get_context(method)

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(multiprocessing, "get_context", recording_get_context)
    assert list(ordered_map(operator.neg, [1, 2, 3, 4], 2)) == [-1, -2, -3, -4]
    assert methods == ["spawn"]


def test_forking_a_multithreaded_process_does_not_warn():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)  # Python >= 3.12 warns on fork with threads
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with worker_pool(2) as pool:
                assert pool.map(operator.neg, [1, 2]) == [-1, -2]
    finally:
        stop.set()
        thread.join()


def test_progress_passes_results_through_and_counts_images(capsys):
    batches = [np.zeros((4, 2)), np.zeros((3, 2)), np.zeros((5, 2))]
    passed = list(with_progress(iter(batches), 12, "drawing test", True, size=len))
    assert [len(batch) for batch in passed] == [4, 3, 5]
    bar = capsys.readouterr().err
    assert "drawing test" in bar and "12/12" in bar


def test_disabled_progress_prints_nothing(capsys):
    assert list(with_progress(range(3), 3, "drawing test", False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
