"""Assemble ``docs/results.md`` from the benchmarks' own pages in ``bench/results/``.

    .venv/bin/python bench/results_page.py

Each page is written by one benchmark and opens with its command, date and machine;
this copies them in a fixed order under one title, headings demoted one level, and
changes no number.  ``make bench`` runs it last.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (page, the benchmark that writes it), in the order a reader wants them.
PAGES = [
    ("submission.md", "bench_submission.py"),
    ("submission_2021.md", "bench_submission.py"),
    ("grid.md", "bench_submission.py"),
    ("search_replay.md", "bench_submission.py"),
    ("msssim.md", "bench_msssim.py"),
    ("cross_machine.md", "bench_cross_machine.py"),
    ("integer_prior.md", "bench_integer_prior.py"),
    ("families.md", "bench_families.py"),
    ("avif_low_rate.md", "bench_avif_options.py"),
    ("refine_sga.md", "bench_refine.py"),
    ("training_progress.md", "training_progress.py"),
    ("allocate.md", "bench_allocate.py"),
    ("pipeline.md", "bench_pipeline.py"),
    ("train.md", "bench_train.py"),
    ("dask.md", "bench_dask.py"),
]


def page() -> str:
    parts = ["# clicpack — measured results", "",
             "Every section below is a benchmark's own page (`bench/results/`), with the command, date and machine "
             "it ran on; `make bench` regenerates them all and this page.", ""]
    for name, script in PAGES:
        path = ROOT / "bench" / "results" / name
        if not path.is_file():
            parts += [f"## {name}", "", f"Not yet run: `python bench/{script}`.", ""]
            continue
        text = path.read_text().strip()
        parts += ["#" + line if line.startswith("#") else line for line in text.splitlines()] + [""]
    return "\n".join(parts)


def main() -> None:
    (ROOT / "docs" / "results.md").write_text(page())


if __name__ == "__main__":
    main()
