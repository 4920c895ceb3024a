"""Command-line codecs: a real encoder binary (HEVC through libheif's heif-enc) from its
definition file to a verified submission, and the faults a definition or a program can have.

`.ci/run` installs Debian's libheif-examples when heif-enc is missing."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.codecs import command, get_codec, ladder_candidates
from pipeline.errors import PipelineError

needs_heif = pytest.mark.skipif(shutil.which("heif-enc") is None or shutil.which("heif-convert") is None,
                                reason="heif-enc/heif-convert not installed (Debian: libheif-examples)")

GOOD = """
name = "{name}"
encode = {encode}
decode = {decode}
params = [20, 40]
label = "q"
suffix = "heic"
magic = "ftypheic"
magic_offset = 4
timeout_s = {timeout}
"""


@pytest.fixture
def codecs_dir(tmp_path, monkeypatch):
    """An empty folder installed as ``CLIC_CODECS_DIR`` (families are re-read afterwards)."""
    folder = tmp_path / "codecs"
    folder.mkdir()
    monkeypatch.setenv("CLIC_CODECS_DIR", str(folder))
    get_codec.cache_clear()
    yield folder
    get_codec.cache_clear()


HEIF_DECODE = ["heif-convert", "{input}", "{output}"]


def define(folder: Path, name: str, encode: list[str], timeout: float = 60, decode: list[str] = HEIF_DECODE) -> None:
    (folder / f"{name}.toml").write_text(
        GOOD.format(name=name, encode=json.dumps(encode), timeout=timeout, decode=json.dumps(decode)))


@needs_heif
def test_heif_family_round_trips_through_its_programs(images):
    image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(images / "kodim01.png").convert("RGB"))
    low, high = get_codec("heif-q20"), get_codec("heif-q40")
    small, large = low.encode(image), high.encode(image)
    assert small[4:12] == b"ftypheic" and len(small) < len(large)
    mse = [float(np.mean((c.decode(d).astype(float) - image) ** 2)) for c, d in ((low, small), (high, large))]
    assert mse[1] < mse[0] < 400  # decodes to the image, better at the higher quality
    assert ladder_candidates("heif")[:2] == ["heif-q5", "heif-q10"]
    assert "programs" in low.fingerprint and low.fingerprint != get_codec("heif-q5").fingerprint


@needs_heif
def test_heif_submission_ships_its_decoder_program_and_verifies(images, tmp_path):
    """Two commands from definition file to verified entry: `clic submission --ladder heif,jpeg`."""
    out = tmp_path / "out"
    args = ["submission", "--images", str(images), "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--ladder", "heif,jpeg", "--bpp", "0.8,1.6", "--layout", "clic2021", "--n-jobs", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    board = pd.read_csv(out / "leaderboard.csv")
    assert (board["bpp"] <= [0.8, 1.6]).all()
    chosen = pd.concat(pd.read_csv(p) for p in sorted(out.glob("*/per_image.csv")))
    assert chosen["candidate"].str.startswith("heif-").any(), chosen
    with zipfile.ZipFile(out / "decoder.zip") as archive:
        names = archive.namelist()
        shipped = archive.read("bin/heif-convert")
        spec = json.loads(archive.read("commands.json"))
    assert shipped == Path(shutil.which("heif-convert")).read_bytes()
    assert spec[0]["decode"][0] == "heif-convert" and "decode.py" in names and "decode" in names
    assert not any(n.startswith("runtime/") for n in names)  # no learned candidate: no runtime


def test_definition_faults_are_one_line_naming_the_file(codecs_dir):
    (codecs_dir / "broken.toml").write_text("name = 'x'\nencode = [")
    with pytest.raises(PipelineError, match=r"broken\.toml: not a codec definition"):
        command.parse_family(codecs_dir / "broken.toml")
    define(codecs_dir, "noparam", ["heif-enc", "-o", "{output}", "{input}"])
    with pytest.raises(PipelineError, match=r"noparam\.toml: encode must use \{input\}, \{output\} and \{param\}"):
        command.parse_family(codecs_dir / "noparam.toml")
    text = GOOD.format(name="fake", encode=json.dumps(["x", "{input}", "{output}", "{param}"]), timeout=1,
                       decode=json.dumps(HEIF_DECODE))
    (codecs_dir / "fake.toml").write_text(text.replace('magic = "ftypheic"', 'magic = "ftypavif"'))
    with pytest.raises(PipelineError, match=r"fake\.toml: magic must not be a classical format's"):
        command.parse_family(codecs_dir / "fake.toml")


def test_a_failing_encoder_names_the_image_and_the_rung(codecs_dir, images, tmp_path):
    define(codecs_dir, "failing", ["false", "{input}", "{output}", "{param}"], decode=["cp", "{input}", "{output}"])
    args = ["encode", "--images", str(images), "--ladder", "failing", "--out", str(tmp_path / "grid"),
            "--cache", str(tmp_path / "cache"), "--n-jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "failing-q20 failed on kodim01.png" in line and "exited with status 1" in line


def test_an_encoder_past_its_time_limit_is_stopped(codecs_dir, images):
    define(codecs_dir, "slow", [sys.executable, "-c", "import time; time.sleep(30)", "{input}", "{output}",
                                "{param}"], timeout=0.5)
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="ran past its 0.5 s limit"):
        get_codec("slow-q20").encode(image)


def test_an_encoder_sees_only_its_scratch_folder(codecs_dir, tmp_path):
    """It runs in a fresh folder, given relative paths, with that folder as HOME; the folder is removed."""
    probe = tmp_path / "seen.json"
    script = ("import json, os, sys, shutil; "
              f"json.dump({{'cwd': os.getcwd(), 'home': os.environ['HOME'], 'args': sys.argv[1:]}}, open({str(probe)!r}, 'w')); "
              "open(sys.argv[2], 'wb').write(b'\\0\\0\\0\\0ftypheic' + open(sys.argv[1], 'rb').read())")
    define(codecs_dir, "probe", [sys.executable, "-c", script, "{input}", "{output}", "{param}"])
    data = get_codec("probe-q40").encode(np.full((8, 8, 3), 7, np.uint8))
    seen = json.loads(probe.read_text())
    assert seen["args"] == ["in.png", "out.heic", "40"] and seen["home"] == seen["cwd"]
    assert not os.path.exists(seen["cwd"]) and data[4:12] == b"ftypheic"
