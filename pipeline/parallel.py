"""The one place that knows how grid cells are run in parallel.

Two engines behind one contract (:func:`run_tasks`):

- joblib's loky processes on this machine (the default; ``n_jobs`` is a process count);
- a ``dask.distributed`` cluster (``n_jobs`` is a connected ``distributed.Client``,
  see :mod:`pipeline.distributed`): ``clic --workers N`` or ``--scheduler ADDRESS``.

Either way a task is a tuple of small picklable arguments (paths, names), so the
worker reads its inputs itself and nothing large crosses the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Union

from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

if TYPE_CHECKING:
    from distributed import Client

Jobs = Union[int, "Client"]  # a local process count, or a dask cluster's client
# Torch threads of every grid task (and so of the decodes that measured each cell's SSE):
# verification decodes with as many to reproduce those pixels bit for bit.
GRID_TORCH_THREADS = 1


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run in-process tasks on one torch thread, as loky workers do (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(GRID_TORCH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _keeping_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a loky worker that loky will not recycle for holding memory.

    loky replaces a worker whose memory grew 300 MB past its size after its first
    task (a "leak"; checked only when psutil is installed, as it is with the dask
    extra).  A worker that loads a network on its first learned cell and keeps it
    (by design: once per worker) looks exactly like that, and was replaced, so the
    next worker imported torch and loaded the network again (seen: 3 worker
    processes for a 12-cell grid on 2 jobs).  The check lives in the worker's copy
    of loky, so it is switched off here, inside the worker.
    """
    try:
        from joblib.externals.loky import process_executor

        process_executor._MAX_MEMORY_LEAK_SIZE = 1 << 62  # private knob; absent -> nothing to do
    except ImportError:
        pass
    return fn(*args)


def progress(total: int, done: int, desc: str) -> tqdm:
    """The one progress bar of a job: ``done`` of ``total`` tasks were finished before."""
    return tqdm(total=total, initial=done, desc=desc, unit="cell", disable=None)


def run_tasks(
    fn: Callable[..., Any], tasks: Sequence[tuple], n_jobs: Jobs, desc: str, done: int = 0
) -> Iterator[Any]:
    """Yield ``fn(*task)`` for every task as they finish, under one progress bar.

    Every task runs with one BLAS/OpenMP/torch thread (loky workers by joblib's
    ``inner_max_num_threads``, dask workers by their nanny's ``OMP_NUM_THREADS=1``;
    with ``n_jobs=1`` tasks run in this process).  ``done`` counts tasks finished
    before this call, so the bar shows the whole job.  ``n_jobs`` may be a dask
    ``Client`` instead of a count: the tasks then run on its cluster.
    """
    if not isinstance(n_jobs, int):
        from .distributed import run_on_cluster

        yield from run_on_cluster(n_jobs, fn, tasks, desc, done)
        return
    with (
        parallel_config(backend="loky", inner_max_num_threads=1),
        one_torch_thread(),
        progress(done + len(tasks), done, desc) as bar,
    ):
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_keeping_worker)(fn, *task) for task in tasks
        )
        for result in results:
            bar.update()
            yield result
