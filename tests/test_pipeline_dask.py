"""The encode grid and decode-verify on a dask cluster, against the local run.

One module cluster (``distributed.connect(workers=2)``: two one-thread worker
processes on loopback) serves every test.  The grid is the hybrid ladder (the
52 classical candidates + the 5 points of the default learned ladder, its
network untrained and exported to a temp folder) on three 128×96 Kodak crops.
Worker processes learn the weights folder from ``CLIC_WEIGHTS_DIR``, which they
inherit; monkeypatching would not reach them.

"Identical" means: ``rd.csv`` equal in every column but the timing columns
``enc_s``/``dec_s`` (measurements that differ between any two runs, local or
not), and the submission folder equal byte for byte, manifest included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("distributed")

import models.ladder  # noqa: E402
import models.weights  # noqa: E402
from pipeline.allocation import Budget  # noqa: E402
from pipeline.cli import app  # noqa: E402
from pipeline.codecs import get_codec, ladder_candidates  # noqa: E402
from pipeline.distributed import connect, shards  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.grid import run_grid  # noqa: E402
from pipeline.run import Settings, run_submission  # noqa: E402

TIMING = ["enc_s", "dec_s"]
BUDGET = Budget(bpp=0.25)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The default learned ladder's network, untrained, in a temp folder this process and its workers use."""
    folder = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIC_WEIGHTS_DIR", str(folder))  # inherited by the worker processes started below
        mp.setattr(models.ladder, "WEIGHTS_DIR", folder)
        ladder = models.ladder.load_ladder("psnr")
        models.weights.export(models.weights.build(ladder), ladder, ladder.weights_path(), note="test")
        get_codec.cache_clear()
        yield folder
        models.weights.load_network.cache_clear()
        get_codec.cache_clear()


@pytest.fixture(scope="module")
def client(weights):
    lines: list[str] = []
    with connect(workers=2, log=lines.append) as client:
        assert lines and lines[0].startswith("dask: scheduler tcp://127.0.0.1:") and "dashboard http" in lines[0]
        yield client


@pytest.fixture(scope="module")
def local(images, weights, tmp_path_factory):
    """The reference: ``local(ladder, full_grid)`` is the whole run on the local path, in this
    process (the adaptive grid and the full one each with a cache of their own)."""
    root = tmp_path_factory.mktemp("local")
    runs = {}

    def run(ladder: str, full_grid: bool = False):
        if (ladder, full_grid) not in runs:
            mode = "full" if full_grid else "adaptive"
            settings = Settings(images=images, out=root / mode / ladder, cache=root / mode / "cache", ladder=ladder,
                                target=BUDGET, n_jobs=1, full_grid=full_grid)
            runs[ladder, full_grid] = run_submission(settings, log=lambda line: None)
        return runs[ladder, full_grid]

    run("hybrid", full_grid=True)  # fills the full grid's cache with every cell, in this process
    return run


def rd_values(out: Path) -> pd.DataFrame:
    """``out/rd.csv`` as text, without its timing columns."""
    return pd.read_csv(out / "rd.csv", dtype=str, keep_default_na=False).drop(columns=TIMING)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def package_files(submission: Path) -> dict[str, object]:
    """A package's files byte for byte, its manifest as JSON less the line naming how the grid
    was searched (a search that finds every cell in the cache packages what the full grid does)."""
    files: dict[str, object] = folder_bytes(submission)
    manifest = json.loads(files.pop("manifest.json"))
    manifest["rd_table"].pop("search")
    return files | {"manifest.json": manifest}


class KillMidGrid(threading.Thread):
    """SIGKILL one worker process while it holds a cell, once ``after`` cells are in the cache."""

    def __init__(self, client, cache: Path, after: int) -> None:
        super().__init__(daemon=True)
        self.client, self.cache, self.after = client, cache, after
        self.pids = client.run(os.getpid)  # worker address -> worker process id
        self.killed: tuple[str, list, int] | None = None  # address, its cells, cells done by then
        self.grid_done = threading.Event()

    def run(self) -> None:
        while self.killed is None and not self.grid_done.is_set():
            done = len(list(self.cache.rglob("*.json")))
            busy = {a: keys for a, keys in self.client.processing().items() if keys} if done >= self.after else {}
            if busy:
                address, keys = next(iter(busy.items()))
                os.kill(self.pids[address], signal.SIGKILL)
                self.killed = (address, list(keys), done)
            time.sleep(0.01)


def test_worker_killed_mid_grid_changes_nothing(client, local, images, tmp_path):
    """Kill a worker mid-grid: its cells rerun elsewhere; rd.csv and the packages equal the local run's."""
    cache = tmp_path / "cache"
    paths = sorted(images.iterdir())
    candidates = ladder_candidates("hybrid")
    cells = len(paths) * len(candidates)
    killer = KillMidGrid(client, cache, after=cells // 4)
    killer.start()
    grid = run_grid(paths, candidates, cache, client, with_msssim=False)  # as a budget run on SSE encodes
    killer.grid_done.set()
    killer.join()
    assert killer.killed is not None, "no worker was busy after a quarter of the grid"
    address, keys, done = killer.killed
    assert keys and done < cells  # it held cells, and the grid was not finished
    assert grid.encoded == cells
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker process
    assert killer.pids[address] not in client.run(os.getpid).values()
    reference = local("hybrid", full_grid=True)
    pd.testing.assert_frame_equal(grid.table.drop(columns=TIMING), reference.grid.table.drop(columns=TIMING))

    # The rest of the run through the --scheduler path: encode finds every cell, the packaged
    # decoder runs in shards on the workers (the untrained network loses every image to a
    # classical candidate in the hybrid ladder, so the learned ladder's package checks its decoder).
    for ladder in ("hybrid", "learned"):
        lines: list[str] = []
        out = tmp_path / ladder
        settings = Settings(images=images, out=out, cache=cache, ladder=ladder, target=BUDGET,
                            scheduler=client.scheduler.address)
        outcome = run_submission(settings, log=lines.append)  # the adaptive grid: it takes every cached cell
        reference = local(ladder, full_grid=True)
        assert lines[0].startswith(f"dask: scheduler {client.scheduler.address}, 2 workers")
        assert outcome.grid.encoded == 0
        assert rd_values(out).equals(rd_values(reference.table_path.parent))
        assert package_files(out / "submission") == package_files(reference.table_path.parent / "submission")
        assert outcome.verification.scores.total_sse == reference.verification.scores.total_sse
        assert not list(out.glob(".*"))  # no shard or staging folders left behind
    assert (out / "submission" / "decoder" / "weights" / "psnr.safetensors").is_file()


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the module cluster holds it
def test_cli_workers_and_scheduler_match_the_local_run(client, local, images, tmp_path):
    """``clic submission --workers 2`` (fresh cache) and ``--scheduler`` (its cache): same rd.csv, same package."""
    common = ["submission", "--images", str(images), "--ladder", "classical", "--bpp", str(BUDGET.bpp)]
    runs = {
        "workers": ["--workers", "2", "--out", str(tmp_path / "w"), "--cache", str(tmp_path / "cache")],
        "scheduler": ["--scheduler", client.scheduler.address, "--out", str(tmp_path / "s"),
                      "--cache", str(tmp_path / "cache")],
    }
    reference = local("classical").table_path.parent
    for name, args in runs.items():
        result = CliRunner().invoke(app, common + args)
        assert result.exit_code == 0, (name, result.output)
        assert "dask: scheduler tcp://" in result.output and "dashboard http" in result.output
        out = Path(args[args.index("--out") + 1])
        assert rd_values(out).equals(rd_values(reference)), name
        assert folder_bytes(out / "submission") == folder_bytes(reference / "submission"), name
    board = pd.read_csv(tmp_path / "w" / "leaderboard.csv")
    assert board["bpp"].iloc[0] == pd.read_csv(reference / "leaderboard.csv")["bpp"].iloc[0]


def scores_lines(output: str) -> list[str]:
    """What ``clic verify`` printed, without the cluster line and the decoding time (a measurement)."""
    return [line for line in output.splitlines() if not line.startswith(("dask: ", "decoding time: "))]


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the module cluster holds it
def test_cli_verify_on_a_cluster_gives_the_local_verdict(client, local, images, tmp_path):
    """``clic verify --workers 2``: the local verify's scores and decoded PNGs; a tampered package
    is refused on the cluster (``--scheduler``) with the local verify's line."""
    package = local("learned").table_path.parent / "submission"
    tampered = shutil.copytree(package, tmp_path / "tampered")
    manifest = json.loads((tampered / "manifest.json").read_text())
    manifest["images"][0]["sse"] *= 1.05  # 0.2 dB: beyond the tolerance for rounding
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    runs = {
        "local": (package, []), "workers": (package, ["--workers", "2"]),
        "tampered-local": (tampered, []), "tampered-scheduler": (tampered, ["--scheduler", client.scheduler.address]),
    }
    results = {
        name: CliRunner().invoke(app, ["verify", str(submission), "--images", str(images),
                                       "--out", str(tmp_path / name), *args])
        for name, (submission, args) in runs.items()
    }
    assert results["local"].exit_code == results["workers"].exit_code == 0, results["workers"].output
    assert "dask: scheduler tcp://" in results["workers"].output
    assert scores_lines(results["workers"].output) == scores_lines(results["local"].output)
    assert folder_bytes(tmp_path / "workers" / "decoded") == folder_bytes(tmp_path / "local" / "decoded")
    assert not list((tmp_path / "workers").glob(".*"))  # no shard or staging folders left behind
    assert results["tampered-local"].exit_code == results["tampered-scheduler"].exit_code == 2
    assert "differs from the RD table" in results["tampered-local"].stderr
    assert results["tampered-scheduler"].stderr == results["tampered-local"].stderr


def test_cli_refuses_both_cluster_options_in_one_line(images, tmp_path):
    args = ["encode", "--images", str(images), "--out", str(tmp_path), "--ladder", "classical",
            "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: give --scheduler or --workers, not both"


def test_unreachable_scheduler_is_a_one_line_error():
    start = time.monotonic()
    with pytest.raises(PipelineError, match=r"dask: no usable cluster at the scheduler at tcp://127\.0\.0\.1:9"):
        with connect(scheduler="tcp://127.0.0.1:9", timeout=1):
            pass
    assert time.monotonic() - start < 20


def test_no_cluster_option_means_the_local_path():
    with connect(None, None) as client:
        assert client is None


def test_shards_balance_pixels_and_cover_every_file():
    weights = {"a": 9, "b": 7, "c": 5, "d": 4, "e": 3, "f": 1}
    groups = shards(weights, 2)
    assert sorted(n for g in groups for n in g) == sorted(weights)
    assert sorted(sum(weights[n] for n in g) for g in groups) == [14, 15]
    assert shards({"x": 1}, 8) == [["x"]]
    assert shards({}, 3) == []


def test_task_keys_name_the_cell_not_the_run(tmp_path):
    """Resubmitting a cell (a retry, a second client) reuses its key; another cell never does."""
    from pipeline.distributed import task_key
    from pipeline.grid import encode_cell

    cell = (tmp_path / "cache", tmp_path / "kodim01.png", "jpeg-q35")
    assert task_key(encode_cell, cell) == task_key(encode_cell, tuple(cell))
    assert task_key(encode_cell, cell).startswith("encode_cell-")
    assert task_key(encode_cell, cell) != task_key(encode_cell, (*cell[:2], "jpeg-q50"))
