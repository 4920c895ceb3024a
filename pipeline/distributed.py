"""The encode grid and the packaged decoder on a ``dask.distributed`` cluster.

``clic encode|submission|verify --workers N`` starts a ``LocalCluster`` of N
single-threaded worker processes on this machine; ``--scheduler tcp://HOST:PORT``
connects to a running cluster (``dask scheduler`` plus ``dask worker --nthreads 1``
on machines that see the images, the cache and the output folder at the same
paths).  Without either option nothing here is imported: the local joblib path
of :mod:`pipeline.parallel` runs.

What crosses the wire
    A grid task is (cache root, image path, candidate name), with the paths made
    absolute.  The worker reads the image itself, builds the codec with
    ``codecs.get_codec`` (cached per process: a network is loaded once per
    worker, not once per cell), writes the cell into the shared cache and sends
    back only the cell's small record.

Keys, retries, kills
    A task's key is a hash of its function and arguments, so a cell has one key
    however often it is submitted.  A cell is written atomically under its final
    name (bitstream, then record), so running it twice writes the same files
    again: when a worker dies mid-cell (killed, out of memory, machine lost) the
    scheduler reruns the cells it held on another worker (up to
    ``distributed.scheduler.allowed-failures`` deaths per cell), and the killed
    attempt leaves at most ``.*.tmp`` debris that no reader takes for a cell.
    An exception inside a cell (a bad image, a codec error) is not retried: it
    cancels the rest and is raised here, as in the local path.

Decode-verify
    :func:`decode_on_cluster` splits the package's image files into one shard per
    worker thread (balanced by pixels) and runs the *packaged* decoder in a
    fresh isolated process per shard on the workers, all writing into the same
    ``decoded/`` folder, so verification still tests the package alone.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PipelineError
from .parallel import progress

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 30.0
PREPARE_TIMEOUT_S = 300.0  # every worker imports the codecs and hashes the weights once
# The local cluster's dask settings; the README's cluster section shows the same for `dask worker`.
# - Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's
#   mmap threshold: every large array is then a fresh mmap and page faults, and MS-SSIM of a
#   cell runs ~3x slower (measured: 55 vs 18 ms on a 128x96 crop).  Unset it.  OMP_NUM_THREADS=1
#   and friends stay: one thread per task, as on the joblib path.
# - Housekeeping wakes every worker's event loop up to 100 times a second: the statistical
#   profiler (10 ms, walking the running cell's stack), the latency tick (20 ms), the memory
#   monitor (100 ms, also run per nanny in the client) and the system monitor (500 ms).  Each
#   wake-up takes the GIL, and on busy cores a core, from a cell.  Profiler off and slower
#   monitors: idle cluster of 2 workers 6.4% -> 1.0% of a core; on the grid (2 workers, cores
#   shared with a training run) the workers' loop threads 0.055 -> 0.009 CPU s per cell, the
#   scheduler and nannies 0.026 -> 0.007.  Per task dask costs ~2.5 ms CPU (no-op tasks), so
#   one task per cell stays (a cell takes 0.6 s).
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}
INSTALL_HINT = "--scheduler/--workers need dask.distributed: pip install 'clicpack[dask]'"


# --- connecting -------------------------------------------------------------------------


@contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] = print,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Iterator[Client | None]:
    """A client of the cluster the options name, or None for the local joblib path.

    ``workers``: start a ``LocalCluster`` of that many one-thread worker processes
    (closed on exit).  ``scheduler``: connect to a running scheduler, waiting up to
    ``timeout`` seconds for it and for its first worker.  The cluster's size and
    dashboard address are logged.
    """
    if scheduler and workers:
        raise PipelineError("give --scheduler or --workers, not both")
    if not scheduler and not workers:
        yield None
        return
    if workers is not None and workers < 1:
        raise PipelineError(f"--workers must be at least 1, not {workers}")
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise PipelineError(INSTALL_HINT) from None
    with ExitStack() as stack:
        if workers:
            where = f"a local cluster of {workers} worker processes"
            try:
                with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read once per nanny, kept for restarts
                    target = stack.enter_context(
                        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
                    )
            except (OSError, RuntimeError) as exc:  # e.g. a script without `if __name__ == "__main__"`
                raise PipelineError(f"dask: could not start {where} ({' '.join(str(exc).split())})") from None
        else:
            target, where = scheduler, f"the scheduler at {scheduler}"
        try:
            client = stack.enter_context(Client(target, timeout=timeout))
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise PipelineError(f"dask: no usable cluster at {where} ({detail})") from None
        log(describe(client))
        yield client


def describe(client: Client) -> str:
    """One line: the cluster's scheduler, workers, threads and dashboard."""
    nthreads = client.nthreads()  # every worker (scheduler_info may list only some)
    dashboard = client.dashboard_link
    try:
        has_bokeh = client.run_on_scheduler(_has_bokeh)
    except Exception:  # noqa: BLE001 - a locked-down scheduler: just print the link
        has_bokeh = True
    if not has_bokeh:
        dashboard += " (needs bokeh on the scheduler: pip install bokeh)"
    return (f"dask: scheduler {client.scheduler.address}, {len(nthreads)} workers, "
            f"{sum(nthreads.values())} threads; dashboard {dashboard}")


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


# --- checks before work is sent ---------------------------------------------------------


def prepare_workers(
    client: Client, images: Sequence[Path], candidates: Sequence[str], folders: Sequence[Path]
) -> None:
    """Refuse early what would fail late, and load every codec once on every worker.

    Each worker must see every file of ``images`` (same size as here: the images,
    or a package's files) and each of ``folders`` (the cache, the output: a probe
    file written here must be readable there),
    and must build every candidate with this machine's fingerprint (same library
    versions, options and weights) -- otherwise its cells would not be the
    cells this client expects.
    """
    from distributed import wait

    from .codecs import get_codec

    sizes = {str(p.absolute()): p.stat().st_size for p in images}
    probes = {}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder.absolute() / f".clic-probe-{uuid.uuid4().hex[:12]}"
        probe.write_text(probe.name)
        probes[str(probe)] = probe.name
    ours = {name: get_codec(name).fingerprint for name in candidates}
    try:
        workers = list(client.nthreads())
        futures = [
            client.submit(_worker_view, sizes, probes, list(candidates), workers=[addr],
                          allow_other_workers=False, pure=False, key=f"prepare-worker-{uuid.uuid4().hex}")
            for addr in workers
        ]
        try:  # a task pinned to a worker that leaves meanwhile would wait forever
            wait(futures, timeout=PREPARE_TIMEOUT_S)
        except TimeoutError:
            client.cancel(futures)
            raise PipelineError(f"dask: workers did not answer the preparation check in {PREPARE_TIMEOUT_S:g} s") from None
        views = dict(zip(workers, client.gather(futures)))
    finally:
        for probe in probes:
            Path(probe).unlink(missing_ok=True)
    for addr, (missing, fingerprints) in views.items():
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise PipelineError(
                f"dask worker {addr} does not see {missing[0]}{more}: images, cache, output and "
                "package must be on storage every worker mounts at the same path"
            )
        for name, theirs in fingerprints.items():
            if theirs != ours[name]:
                raise PipelineError(
                    f"dask worker {addr} builds {name} differently ({theirs!r}, here {ours[name]!r}): "
                    "install the same clicpack, libraries and weights on every worker"
                )


def _worker_view(sizes: dict[str, int], probes: dict[str, str], candidates: list[str]) -> tuple:
    """On a worker: what it cannot see as the client does, and its codecs' fingerprints."""
    from .codecs import get_codec

    missing = []
    for path, size in sizes.items():
        try:
            if os.stat(path).st_size != size:
                missing.append(path)
        except OSError:
            missing.append(path)
    for path, text in probes.items():
        try:
            if Path(path).read_text() != text:
                missing.append(str(Path(path).parent))
        except OSError:
            missing.append(str(Path(path).parent))
    return missing, {name: get_codec(name).fingerprint for name in candidates}


# --- running tasks ----------------------------------------------------------------------


def task_key(fn: Callable[..., Any], task: tuple) -> str:
    """The task's key: readable prefix (the dashboard groups by it) + hash of function and arguments."""
    from dask.base import tokenize

    return f"{fn.__name__}-{tokenize(fn.__module__, fn.__qualname__, *map(str, task))}"


def _absolute(value: Any) -> Any:
    """Paths become absolute: a worker has its own working folder."""
    return value.absolute() if isinstance(value, Path) else value


def run_on_cluster(
    client: Client, fn: Callable[..., Any], tasks: Sequence[tuple], desc: str, done: int = 0
) -> Iterator[Any]:
    """Yield ``fn(*task)`` for every task as the cluster finishes them, under one progress bar.

    The contract of :func:`pipeline.parallel.run_tasks`; identical tasks run once.
    On an error every unfinished task is cancelled and the error raised.
    """
    from distributed import CancelledError, KilledWorker, as_completed

    tasks = [tuple(map(_absolute, task)) for task in tasks]
    keys = [task_key(fn, task) for task in tasks]
    unique = dict(zip(keys, tasks))
    pending = {}
    if unique:
        columns = list(zip(*unique.values()))
        pending = {f.key: f for f in client.map(fn, *columns, key=list(unique), pure=False)}
    try:
        with progress(done + len(unique), done, desc) as bar:
            for future in as_completed(list(pending.values())):
                try:
                    result = future.result()
                except KilledWorker:
                    raise PipelineError(
                        f"dask: every worker that ran {future.key} died (out of memory?), "
                        "too often to retry; see the worker logs"
                    ) from None
                except CancelledError:
                    raise PipelineError(f"dask: {future.key} was cancelled (scheduler lost?)") from None
                del pending[future.key]
                future.release()  # a finished cell is in the cache: never recompute it on a worker loss
                bar.update()
                yield result
    finally:
        if pending:
            client.cancel(list(pending.values()))


# --- decode-verify ----------------------------------------------------------------------


def shards(weights: dict[str, int], n: int) -> list[list[str]]:
    """Split names into at most ``n`` groups of nearly equal total weight (largest first)."""
    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(min(n, len(weights)))]
    for name in sorted(weights, key=lambda k: (-weights[k], k)):
        total, names = min(groups, key=lambda g: g[0])
        groups.remove((total, names))
        groups.append((total + weights[name], [*names, name]))
    return sorted(sorted(names) for _, names in groups if names)


def decode_shard(submission: Path, shard: Path, decoded: Path) -> float:
    """On a worker: the packaged decoder on one shard's files, in a fresh process (ms);
    one decoding process per shard, as the shards already fill the worker threads."""
    from .verify import decoder_process

    return decoder_process(submission, shard, decoded, jobs=1)


def decoder_for(client: Client | None) -> Callable[[Path, Path], float]:
    """The ``run_decoder`` of :func:`pipeline.verify.verify`: one local process, or shards on the cluster."""
    from .verify import run_decoder

    return run_decoder if client is None else decode_on_cluster(client)


def decode_on_cluster(client: Client) -> Callable[[Path, Path], float]:
    """A ``run_decoder`` for :func:`pipeline.verify.verify` that decodes on the cluster.

    The returned function checks that every worker sees the package and the
    output folder (:func:`prepare_workers`), empties ``decoded``, links the
    package's image files into one hidden shard folder per worker thread beside
    it (on the shared output storage), runs the packaged decoder on every shard
    on the workers and returns the decoder processes' wall times summed, in ms
    (the single-process figure plus one start-up per extra shard).
    """

    def run(submission: Path, decoded: Path) -> float:
        from .package import read_manifest

        submission, decoded = submission.absolute(), decoded.absolute()
        files = {p.name: p for p in sorted((submission / "images").iterdir())
                 if p.is_file() and not p.name.startswith(".")}
        prepare_workers(client, [submission / "decoder" / "decode.py", *files.values()], [], [decoded.parent])
        pixels = {cell["file"]: int(cell["pixels"]) for cell in read_manifest(submission)["images"]}
        threads = sum(client.nthreads().values()) or 1
        groups = shards({name: pixels.get(name, path.stat().st_size) for name, path in files.items()}, threads)
        shutil.rmtree(decoded, ignore_errors=True)
        staging = decoded.with_name(f".{decoded.name}.shards")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            tasks = []
            for k, group in enumerate(groups):
                folder = staging / f"{k:03d}"
                folder.mkdir(parents=True)
                for name in group:
                    _link_or_copy(files[name], folder / name)
                tasks.append((submission, folder, decoded))
            decoded.mkdir(parents=True, exist_ok=True)
            return sum(run_on_cluster(client, decode_shard, tasks, "decode shards"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    return run


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
