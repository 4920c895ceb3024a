"""The one place that knows how grid cells are run in parallel.

Today: joblib's loky processes.  A dask backend (``--scheduler``/``--workers``)
only has to provide another branch of :func:`run_tasks` with the same contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run in-process tasks on one torch thread, as loky workers do (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_tasks(
    fn: Callable[..., Any], tasks: Sequence[tuple], n_jobs: int, desc: str, done: int = 0
) -> Iterator[Any]:
    """Yield ``fn(*task)`` for every task as they finish, under one progress bar.

    Every task runs with one BLAS/OpenMP/torch thread (workers by joblib's
    ``inner_max_num_threads``; with ``n_jobs=1`` tasks run in this process).
    ``done`` counts tasks finished before this call, so the bar shows the whole job.
    """
    with (
        parallel_config(backend="loky", inner_max_num_threads=1),
        one_torch_thread(),
        tqdm(total=done + len(tasks), initial=done, desc=desc, unit="cell", disable=None) as bar,
    ):
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(fn)(*task) for task in tasks
        )
        for result in results:
            bar.update()
            yield result
