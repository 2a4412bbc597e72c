"""The worker-pool core shared by the procedural generators (:mod:`noisyarl.synthetic.faces`
and :mod:`noisyarl.synthetic.objects`).

A generator turns its output into a list of picklable *jobs* (one face, or a chunk of object
images), each drawn from its own seeded RNGs, and maps a top-level render function over them
with :func:`ordered_map`. Results come back in job order whatever the number of processes, so
the output is byte-identical for a seed with 1 or many workers. :func:`with_progress` adds an
optional tqdm bar; :func:`resolve_workers` turns the user's ``workers`` setting into a count.

Pools are forked where the platform allows it and spawned elsewhere (see :func:`worker_pool`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from noisyarl.utils.progress import progress

Job = TypeVar("Job")
Result = TypeVar("Result")

#: Most processes chosen when ``workers`` is None (the project's machines have 2 cores).
DEFAULT_MAX_WORKERS = 2
#: Upper bound of :func:`balanced_chunksize`: jobs handed to a process at once.
MAX_CHUNKSIZE = 64


def resolve_workers(requested: int | None, num_items: int, pool_threshold: int) -> int:
    """Number of drawing processes to use, always >= 1.

    requested: the user's setting; an int is used as given (values below 1 mean 1).
    None picks ``min(2, CPU count)`` when ``num_items >= pool_threshold`` and 1 otherwise,
    since starting processes costs more than drawing a few images.

    >>> resolve_workers(3, 10, 400), resolve_workers(0, 10, 400), resolve_workers(None, 10, 400)
    (3, 1, 1)
    """
    if requested is not None:
        return max(1, requested)
    if num_items < pool_threshold:
        return 1
    return min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1)


def balanced_chunksize(num_jobs: int, workers: int) -> int:
    """``imap`` chunk size for many small jobs: about 8 chunks per process, 1 to 64 jobs each.

    >>> balanced_chunksize(10, 2), balanced_chunksize(160, 2), balanced_chunksize(10**6, 2)
    (1, 10, 64)
    """
    return max(1, min(MAX_CHUNKSIZE, num_jobs // (workers * 8)))


def worker_pool(workers: int) -> multiprocessing.pool.Pool:
    """A pool of ``workers`` drawing processes: forked where possible, spawned elsewhere.

    Fork works from any script (spawn re-imports an unguarded ``__main__`` and fails); the
    workers only run numpy and PIL, never torch, so torch threads in the parent are harmless.
    Python >= 3.12 warns about forking a multi-threaded process; that warning is silenced here.
    The caller closes the pool (use it as a context manager).
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        return multiprocessing.get_context(method).Pool(workers)


def ordered_map(
    function: Callable[[Job], Result], jobs: Sequence[Job], workers: int, chunksize: int = 1
) -> Iterator[Result]:
    """``function(job)`` for every job, lazily and in job order.

    function: a top-level (picklable) function. workers <= 1, or fewer than 2 jobs, runs in
    this process without a pool; otherwise a :func:`worker_pool` of ``workers`` processes is
    opened on the first ``next()`` and closed when the iterator ends or is closed.
    chunksize: jobs sent to a process at a time (see :func:`balanced_chunksize`).
    """
    if workers <= 1 or len(jobs) < 2:
        yield from map(function, jobs)
        return
    with worker_pool(workers) as pool:
        yield from pool.imap(function, jobs, chunksize=chunksize)


def with_progress(
    results: Iterable[Result],
    total: int,
    desc: str,
    enabled: bool,
    size: Callable[[Result], int] | None = None,
) -> Iterator[Result]:
    """``results`` unchanged, advancing a tqdm bar (unit "img", out of ``total``) as they come.

    size: images in one result (default 1 each, e.g. ``len`` for a batch of images).
    enabled: False draws no bar.
    """
    with progress(total=total, desc=desc, enabled=enabled, unit="img") as bar:
        for result in results:
            bar.update(1 if size is None else size(result))
            yield result
