"""Atomic writes: a file (or folder) appears under its final name complete or not at all.

Everything is written under a hidden temporary name in the destination folder and
then renamed with :func:`os.replace`, so a run killed half-way leaves only
``.*.tmp`` debris that no reader takes for a finished result.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pandas as pd


def temp_sibling(path: Path) -> Path:
    """A unique hidden name beside ``path`` (same file system, so renames are atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (creating parent folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame (without its index) as CSV atomically."""
    write_text(path, frame.to_csv(index=False))


def replace_dir(built: Path, dest: Path) -> None:
    """Move the finished folder ``built`` to ``dest``, replacing any previous one.

    The old folder is first renamed aside, so ``dest`` is at every moment either
    the complete old or the complete new folder (or, for an instant, absent).
    """
    old = temp_sibling(dest)
    if dest.exists():
        os.replace(dest, old)
    os.replace(built, dest)
    shutil.rmtree(old, ignore_errors=True)
