"""Atomic writes, for the whole project: a file or folder appears under its final name
complete or not at all.

Everything is written under a hidden temporary name in the destination folder
(``.<name>.<pid>.<8 hex>.tmp``: same file system, so the rename is atomic), flushed
to disk, then renamed with :func:`os.replace`.  A run killed half-way therefore leaves
only ``.*.tmp`` debris that no reader takes for a finished result; a write that fails
(disk full, read-only folder) removes its temporary file and raises an ``OSError``
naming the final path.  ``os.replace`` replaces a symbolic link at the destination
instead of writing through it.

This module is the lowest layer (standard library only; pandas is imported by
:func:`write_csv` alone), so ``allocate``, ``models`` and ``pipeline`` all use it.
The packaged decoder does not: it stays self-contained.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_DEBRIS = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def temp_sibling(path: Path) -> Path:
    """A unique hidden name beside ``path`` (same file system, so renames are atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _naming(error: OSError, path: Path) -> OSError:
    """The same error, naming the final path instead of the temporary one."""
    if error.errno is None:
        return OSError(f"{path}: {error}")
    return OSError(error.errno, error.strerror or os.strerror(error.errno), str(path))


@contextmanager
def writing(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it replaces ``path``.

    For writers that need a file name (safetensors, image libraries).  ``mode`` sets the
    file's permission bits (default: whatever the writer and umask gave).  On any failure
    the temporary file is removed and nothing appears under ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _naming(exc, path.parent) from exc
    tmp = temp_sibling(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(exc, path) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (creating parent folders)."""
    with writing(path, mode) as tmp:
        with open(tmp, "xb") as f:
            f.write(data)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_csv(path: Path, frame) -> None:
    """Write a pandas DataFrame (without its index) as CSV atomically."""
    write_text(path, frame.to_csv(index=False))


def replace_dir(built: Path, dest: Path) -> None:
    """Move the finished folder ``built`` to ``dest``, replacing any previous one.

    The old folder is first renamed aside, so ``dest`` is at every moment either
    the complete old or the complete new folder (or, for an instant, absent).
    """
    old = temp_sibling(dest)
    if dest.exists() or dest.is_symlink():
        os.replace(dest, old)
    os.replace(built, dest)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_debris(folder: Path, name: str | None = None) -> int:
    """Remove the temporary files and folders that killed processes left in ``folder``.

    Only ``.*.<pid>.<8 hex>.tmp`` entries (of ``name`` if given) whose process is gone are
    removed, so a concurrent run's work in progress is left alone.  Returns the count.
    """
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = _DEBRIS.match(entry.name)
        if not match or (name is not None and not entry.name.startswith(f".{name}.")):
            continue
        if int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed
