"""Reliability with a learned network: determinism (latents on 1 and 2 torch threads, fresh processes),
the bad-bitstream corpus against the packaged decoder, and what that decoder touches.

A module fixture trains a tiny ladder (N=16, M=24) a few steps on Kodak crops, exports
it, and makes it the pipeline's learned ladder (``models.ladder.LADDER_DIR`` and
``WEIGHTS_DIR`` patched), so the grid, the package and the packaged decoder all use it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import allocate
import models.ladder
from corpus import KODAK, bad_bitstreams, kodak_crop
from eval.images import load_rgb8
from models import codec
from models.ladder import load_ladder
from pipeline.codecs import get_codec
from pipeline.errors import PipelineError
from pipeline.grid import run_grid
from pipeline.package import latent_digests, package, platform_record, read_manifest
from pipeline.verify import PSNR_TOLERANCE_DB, verify
from tiny_ladder import installed, train_tiny, write_ladder

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ["learned-tiny-q1", "learned-tiny-q2"]

# Runs the packaged decode.py's main() in this fresh process for each case folder, with an
# audit hook recording every file it opens, renames, removes or creates.
DRIVER = r'''
import contextlib, importlib.util, io, json, os, sys, traceback
decoder, cases_file, result_file = sys.argv[1:]
events = []
MUTATING = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.symlink", "os.link",
            "os.truncate", "shutil.rmtree", "shutil.copyfile", "shutil.move", "os.utime"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if not recording:
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2] or 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & WRITE_FLAGS)
        events.append(["write" if writes else "read", os.fsdecode(args[0])])
    elif event in MUTATING:
        events.extend(["write", os.fsdecode(a)] for a in args[:2] if isinstance(a, (str, bytes, os.PathLike)))

recording = False
sys.addaudithook(hook)
spec = importlib.util.spec_from_file_location("decode", os.path.join(decoder, "decode.py"))
decode = importlib.util.module_from_spec(spec)
spec.loader.exec_module(decode)
results = {}
for name, (src, dst, threads) in json.load(open(cases_file)).items():
    if threads:  # not for the audited run: it must import torch itself, as decode.py alone would
        import torch
        torch.set_num_threads(threads)
    err = io.StringIO()
    recording = name == "audited"
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            threads_option = ["--threads", str(threads), "--latents", dst + ".latents.json"] if threads else []
            rc = decode.main(["--jobs", "1", *threads_option, src, dst])  # one process: the audit hook sees all
    except BaseException:
        rc, err = "crash", io.StringIO(traceback.format_exc())
    recording = False
    results[name] = {"rc": rc, "stderr": err.getvalue(),
                     "threads_after": sys.modules["torch"].get_num_threads() if threads else None}
results["events"] = events
with open(result_file, "w") as f:
    json.dump(results, f)
'''


def write_images(folder: Path) -> Path:
    """An RGB crop (384×256: big enough for torch to split work between threads), a gray 67×65
    and a palette 33×47 image (odd sizes for the learned codec too)."""
    folder.mkdir()
    kodak_crop("kodim01", 0, 0, 384, 256).save(folder / "crop.png")
    kodak_crop("kodim05", 40, 300, 65, 67).convert("L").save(folder / "gray.png")
    kodak_crop("kodim23", 500, 120, 47, 33).quantize(colors=50).save(folder / "palette.png")
    strip = np.tile(np.asarray(kodak_crop("kodim19", 0, 300, 500, 3)), (1, 10, 1))
    Image.fromarray(strip).save(folder / "strip.png")  # 3×5000
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny ladder trained 20 steps, exported, installed as the pipeline's learned ladder;
    a grid of the three images × two rates and a package of the best-quality choice."""
    root = tmp_path_factory.mktemp("tiny")
    ladders, weights = root / "ladders", root / "weights"
    ladders.mkdir()
    write_ladder(ladders, "tiny", 250, lambdas=[0.0017, 0.006])
    with installed(ladders, weights):
        get_codec.cache_clear()
        train_tiny(root, weights, steps=20, note="reliability test", bf16=False)
        images = write_images(root / "images")
        grid = run_grid(sorted(images.iterdir()), CANDIDATES, root / "cache", n_jobs=1)
        table_path = root / "rd.csv"
        grid.table.to_csv(table_path, index=False)
        allocation = allocate.solve_budget(allocate.load_rd_table(table_path), 10**7)
        submission = root / "submission"
        package(submission, allocation, grid.store, table_path, {"test": "reliability"})
        yield SimpleNamespace(root=root, images=images, grid=grid, submission=submission,
                              ladder=load_ladder("tiny"), weights=weights)
    get_codec.cache_clear()
    torch.set_num_threads(1)


def grid_decode(tiny, image: str) -> np.ndarray:
    """The reconstruction the grid measured: the chosen cell's bitstream decoded in this process."""
    cell = next(c for c in read_manifest(tiny.submission)["images"] if c["image"] == image)
    data = (tiny.submission / "images" / cell["file"]).read_bytes()
    return codec.decode_stream(data, tiny.weights)


def test_encoder_refuses_images_the_decoder_would_refuse(tiny):
    huge = np.broadcast_to(np.zeros(3, np.uint8), (4097, 8192, 3))  # 2**25 + 8192 pixels, no memory
    with pytest.raises(ValueError, match="exceeds the learned codec's limit"):
        codec.encode_image(tiny.ladder.entries[0], huge, tiny.weights)


def test_decode_gives_the_same_latent_on_1_and_2_threads(tiny):
    """No thread pin: the latent is integer-exact on any thread count; the synthesis may round
    differently, within the verification tolerance."""
    data = codec.encode_image(tiny.ladder.entries[1], load_rgb8(tiny.images / "crop.png"), tiny.weights)
    one, one_latent = codec.decode_with_digest(data, tiny.weights)
    torch.set_num_threads(2)
    try:
        two, two_latent = codec.decode_with_digest(data, tiny.weights)
        again = codec.encode_image(tiny.ladder.entries[1], load_rgb8(tiny.images / "crop.png"), tiny.weights)
    finally:
        torch.set_num_threads(1)
    assert again == data
    assert one_latent == two_latent
    assert np.abs(one.astype(int) - two).max() <= 1


@pytest.fixture(scope="module")
def driven(tiny, tmp_path_factory):
    """One fresh ``python -I`` process running the packaged decoder on: the package's images
    with 1 and with 2 torch threads, each bad bitstream, and an audited good run."""
    work = tmp_path_factory.mktemp("driver")
    (work / "driver.py").write_text(DRIVER)
    images = tiny.submission / "images"
    # The audited run comes first, so that it also records the learned decoder's imports.
    cases = {"audited": [str(images), str(work / "audited-out"), None]}
    cases |= {f"threads {t}": [str(images), str(work / f"decoded-{t}"), t] for t in (1, 2)}
    valid = next(images.iterdir()).read_bytes()
    for name, (data, _) in bad_bitstreams(valid).items():
        src = work / name.replace(" ", "_")
        src.mkdir()
        (src / "bad.bin").write_bytes(data)
        cases[name] = [str(src), str(src.parent / f"{src.name}-out"), 2]
    (work / "cases.json").write_text(json.dumps(cases))
    decoder = tiny.submission / "decoder"
    done = subprocess.run([sys.executable, "-I", str(work / "driver.py"), str(decoder), str(work / "cases.json"),
                           str(work / "result.json")], capture_output=True, text=True, cwd=decoder, timeout=300)
    assert done.returncode == 0, done.stderr
    return SimpleNamespace(work=work, cases=cases, result=json.loads((work / "result.json").read_text()),
                           valid=valid)


def within_tolerance(decoded: np.ndarray, original: np.ndarray, recorded_sse: float) -> bool:
    sse = float(((decoded.astype(np.int64) - original) ** 2).sum())
    return sse == recorded_sse or abs(10 * np.log10(sse / recorded_sse)) <= PSNR_TOLERANCE_DB


def test_packaged_decoder_reproduces_the_latents_on_1_and_2_threads(tiny, driven):
    """1 thread (the grid's): the grid's pixels.  1 and 2 threads: the recorded latents (the integer
    path); the tiny network's synthesis may round differently, within the verification tolerance."""
    latents = {}
    for t in (1, 2):
        assert driven.result[f"threads {t}"]["rc"] == 0, driven.result[f"threads {t}"]
        assert driven.result[f"threads {t}"]["threads_after"] == t
        latents[t] = json.loads(Path(driven.cases[f"threads {t}"][1] + ".latents.json").read_text())
    manifest = read_manifest(tiny.submission)
    assert latents[1] == latents[2] == {cell["image"]: cell["latent"] for cell in manifest["images"]}
    for cell in manifest["images"]:
        original = load_rgb8(tiny.images / f"{cell['image']}.png").astype(np.int64)
        one = load_rgb8(driven.work / "decoded-1" / f"{cell['image']}.png")
        assert np.array_equal(one, grid_decode(tiny, cell["image"])), cell["image"]
        assert float(((one.astype(np.int64) - original) ** 2).sum()) == cell["sse"]
        two = load_rgb8(driven.work / "decoded-2" / f"{cell['image']}.png")
        assert np.abs(one.astype(int) - two).max() <= 1 and within_tolerance(two, original, cell["sse"])


def test_verify_in_a_fresh_process_matches_the_rd_table(tiny, tmp_path):
    """``verify`` runs the decoder as the server would (torch's default thread count)."""
    result = verify(tiny.submission, tiny.images, tmp_path / "decoded")
    table = tiny.grid.table.set_index(["image", "candidate"])
    for cell in result.manifest["images"]:
        assert table.loc[(cell["image"], cell["candidate"]), "sse"] == cell["sse"]
    assert (tiny.submission / "decoder" / "ladders" / "tiny.toml").is_file()
    assert sorted(p.name for p in (tiny.submission / "decoder" / "weights").iterdir()) == ["tiny.safetensors"]


def test_verify_names_a_differing_latent_and_accepts_rounding_within_tolerance(tiny, tmp_path):
    """As on another machine: the recorded SSE off by a rounding is accepted (and said); off by
    more than the tolerance, or a latent that differs, is an error naming the image."""
    copy = tmp_path / "submission"
    shutil.copytree(tiny.submission, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["platform"]["processor"] = "another CPU"
    cell = manifest["images"][0]
    recorded = cell["sse"]

    def verify_with(**changes) -> object:
        cell.update(changes)
        (copy / "manifest.json").write_text(json.dumps(manifest))
        return verify(copy, tiny.images, tmp_path / "decoded")

    result = verify_with(sse=recorded + 1)
    assert not result.agreement.exact and not result.agreement.same_platform
    assert 0 < result.agreement.max_psnr_change_db <= PSNR_TOLERANCE_DB
    assert "rounded differently on another platform" in result.agreement.describe()
    with pytest.raises(PipelineError, match=f"{cell['image']} .*SSE"):
        verify_with(sse=recorded * 1.01)  # 0.04 dB: beyond the tolerance
    with pytest.raises(PipelineError, match=f"{cell['image']} .*decoded latent {cell['latent']} differs"):
        verify_with(sse=recorded, latent="0123456789abcdef")


def test_packaged_decoder_runs_without_compressai(tiny, tmp_path):
    """A fresh ``python -I`` process in which ``import compressai`` fails, as where the challenge's
    decoder image has torch but not CompressAI: the package decodes the same latents."""
    decoder = tiny.submission / "decoder"
    without = ("import runpy, sys; sys.modules['compressai'] = None; "
               f"sys.argv = ['decode.py', '--latents', {str(tmp_path / 'latents.json')!r}, "
               f"{str(tiny.submission / 'images')!r}, {str(tmp_path / 'out')!r}]; "
               f"runpy.run_path({str(decoder / 'decode.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-I", "-c", without], capture_output=True, text=True, cwd=decoder,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    recorded = {cell["image"]: cell["latent"] for cell in read_manifest(tiny.submission)["images"]}
    assert json.loads((tmp_path / "latents.json").read_text()) == recorded


def test_parallel_decoding_writes_the_same_files_and_fails_the_same_way(tiny, tmp_path):
    """``decode.py --jobs 3`` (three processes) against ``--jobs 1``: the same files, pixels within tolerance, nothing else
    written; a bad file among good ones still ends the run with one line naming it, exit 2."""
    decoder = tiny.submission / "decoder"

    def run(jobs: int, src: Path, dst: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-I", str(decoder / "decode.py"), "--jobs", str(jobs), str(src),
                               str(dst)], capture_output=True, text=True, cwd=decoder, timeout=300)

    count = len(list((tiny.submission / "images").iterdir()))
    outputs = {}
    for jobs in (1, 3):
        done = run(jobs, tiny.submission / "images", tmp_path / f"out-{jobs}")
        assert done.returncode == 0 and done.stdout.startswith(f"decoded {count} files"), done.stderr
        outputs[jobs] = {p.name: load_rgb8(p) for p in (tmp_path / f"out-{jobs}").iterdir()}
    assert sorted(outputs[1]) == sorted(outputs[3]) and len(outputs[1]) == count
    for cell in read_manifest(tiny.submission)["images"]:
        original = load_rgb8(tiny.images / f"{cell['image']}.png").astype(np.int64)
        assert all(within_tolerance(outputs[j][f"{cell['image']}.png"], original, cell["sse"]) for j in (1, 3))
    bad = tmp_path / "with-bad"
    shutil.copytree(tiny.submission / "images", bad)
    (bad / "zz.bin").write_bytes(b"LIC" + bytes(30))
    done = run(3, bad, tmp_path / "bad-out")
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("decode.py: zz.bin: ") and "\n" not in err, err
    assert not [p for p in (tmp_path / "bad-out").iterdir() if p.name.startswith(".")]


def test_bad_bitstreams_fail_in_one_line_with_exit_2(driven):
    for name, (_, phrase) in bad_bitstreams(driven.valid).items():
        outcome = driven.result[name]
        err = outcome["stderr"].strip()
        assert outcome["rc"] == 2, (name, outcome)
        assert err.startswith("decode.py: bad.bin: ") and "\n" not in err and phrase in err, (name, err)
        assert not list(Path(driven.cases[name][1]).glob("*")), name  # no output for a bad file


def test_packaged_decoder_reads_only_its_files_and_writes_only_its_output(tiny, driven):
    decoder = (tiny.submission / "decoder").resolve()
    src, dst = Path(driven.cases["audited"][0]).resolve(), Path(driven.cases["audited"][1]).resolve()
    libraries = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    system = [Path("/proc"), Path("/sys"), Path("/dev"), Path("/usr"), Path("/etc")]
    assert driven.result["audited"]["rc"] == 0
    events = driven.result["events"]
    assert any(kind == "read" and str(decoder / "runtime") in path for kind, path in events)  # its own code
    assert any(kind == "read" and str(src) in path for kind, path in events)
    for kind, path in events:
        resolved = Path(path).resolve() if os.path.isabs(path) else (decoder / path).resolve()
        if kind == "write":
            assert dst == resolved or dst in resolved.parents or path == os.devnull, f"wrote {path}"
        else:
            allowed = [decoder, src, dst, *libraries, *system, driven.work / "driver.py"]  # (the harness itself)
            assert any(resolved == a or a in resolved.parents for a in allowed), f"read {path}"
    assert sorted(p.name for p in dst.iterdir()) == sorted(f"{c['image']}.png" for c in
                                                          read_manifest(tiny.submission)["images"])


def test_manifest_records_where_the_bit_exact_guarantee_holds(tiny):
    manifest = read_manifest(tiny.submission)
    assert manifest["platform"] == platform_record()
    assert manifest["platform"]["machine"] == platform.machine() and manifest["platform"]["torch"] == torch.__version__
    assert set(manifest["guarantee"]) == {"latents", "pixels"}
    for cell in manifest["images"]:  # every chosen cell is learned here: each records its latent
        assert cell["latent"] == codec.latent_digest((tiny.submission / "images" / cell["file"]).read_bytes(), tiny.weights)
    assert all(manifest["versions"][name] for name in ("python", "torch", "compressai", "numpy", "pillow"))
    assert "wall_s" not in manifest["allocation"] and manifest["rd_table"]["file"] == "rd.csv"


def test_the_grid_records_each_learned_cells_latent_and_packaging_reads_it(tiny):
    store, table = tiny.grid.store, tiny.grid.table
    for image, candidate in zip(table["image"], table["candidate"]):  # from the grid's own decode
        assert store.load(image, candidate)["latent"] == codec.latent_digest(
            store.bitstream(image, candidate).read_bytes(), tiny.weights)
    chosen = table.drop_duplicates("image")
    recorded = latent_digests(chosen, store)
    image, candidate = chosen["image"].iloc[0], chosen["candidate"].iloc[0]
    store.update(image, candidate, latent=None)  # a cell cached before records kept it: decoded instead
    try:
        assert latent_digests(chosen, store) == recorded
    finally:
        store.update(image, candidate, latent=recorded[image])


PSNR_WEIGHTS = ROOT / "models" / "weights" / "psnr.safetensors"


@pytest.mark.skipif(not PSNR_WEIGHTS.is_file(), reason="models/weights/psnr.safetensors not trained yet")
def test_real_psnr_weights_decode_identically_with_1_and_2_threads():
    image = load_rgb8(KODAK / "kodim01.png")[:128, :192]
    # The shipped ladder files, even where a module fixture has installed the tiny ladder.
    with installed(ROOT / "models" / "ladders", PSNR_WEIGHTS.parent):
        ladder = models.ladder.load_ladder("psnr")
        try:
            data = codec.encode_image(ladder.entries[2], image)
            one = codec.decode_stream(data)
            torch.set_num_threads(2)
            two = codec.decode_stream(data)
        finally:
            torch.set_num_threads(1)
    assert np.array_equal(one, two)


def test_a_table_image_is_the_same_pixels_for_every_codec(tiny):
    """Scoring convention: every codec's SSE is against load_rgb8 of the original (RGB 8-bit)."""
    table = pd.read_csv(tiny.root / "rd.csv")
    gray = load_rgb8(tiny.images / "gray.png")
    assert np.array_equal(gray[:, :, 0], gray[:, :, 2]) and gray.shape == (67, 65, 3)
    assert set(table["image"]) == {"crop", "gray", "palette", "strip"}
    assert (table["width"] * table["height"] == table["pixels"]).all()
    assert Image.open(tiny.images / "palette.png").mode == "P"
