"""The benchmarks stay runnable and `make bench` regenerates every results page."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# Appended by bench/training_progress.py after each training run: a log of runs, not a table to regenerate.
TRAINING_LOG = {"training_progress.csv", "training_progress.md", "training_progress.png", "gap_per_image.csv"}


def bench_recipe() -> str:
    """The lines of the Makefile's ``bench`` target."""
    makefile = (ROOT / "Makefile").read_text()
    return makefile[makefile.index("\nbench:"):makefile.index("\nlint:")]


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_every_bench_script_imports(script: str, monkeypatch) -> None:
    """A refactor that breaks a benchmark's imports fails here, not months later in `make bench`."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert script == "common.py" or callable(getattr(module, "main", None)), f"{script} has no main()"


def test_make_bench_writes_every_results_page() -> None:
    """Each page or table in bench/results/ is written by a script that `make bench` runs."""
    sources = [(BENCH / f"{name}.py").read_text() for name in set(re.findall(r"bench/(\w+)\.py", bench_recipe()))]
    orphans = []
    for page in sorted(p for p in (BENCH / "results").iterdir() if p.name not in TRAINING_LOG):
        # A script names its page in full, or by the prefix of a name it completes (points_<ladder>).
        names = (page.name, page.stem, page.stem.rsplit("_", 1)[0] + "_")
        if not any(name in source for source in sources for name in names):
            orphans.append(page.name)
    assert not orphans, f"no benchmark that `make bench` runs writes {orphans}"
