"""The submission layout CLIC has asked for since 2021: one decoder zip, one data zip per target.

::

    OUT/decoder.zip        the package's decoder/ folder plus an executable ``decode``
                           entry point; byte for byte the same for every target
    OUT/<target>/data.zip  the image files of one target, stored (not compressed:
                           they are compressed already), each as ``<image>.bin`` (the
                           decoder tells formats by their bytes)

The organisers unzip the decoder, put the data file beside it and run ``./decode``,
which unzips the data and writes ``images/<stem>.png``.  The bytes that count are the
data zip's, so an allocation for this layout caps the files at the target less the
zip's own structure (:func:`data_zip_overhead`, exact: names are known in advance).
Zips are deterministic: sorted entries, fixed dates and permissions.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from eval import atomic

from .errors import PipelineError

LAYOUTS = ("clic2019", "clic2021")
DECODER_ZIP, DATA_ZIP = "decoder.zip", "data.zip"
MEMBER_SUFFIX = ".bin"  # one suffix for every data member, so the zip's structure is known before allocating
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
LOCAL_HEADER, CENTRAL_HEADER, END_RECORD = 30, 46, 22  # fixed bytes of a stored zip's structure

ENTRY_POINT = '''#!/usr/bin/env python3
"""CLIC entry point: ./decode [DATA_ZIP [OUTPUT_DIR]]

Unzips the data file (default: the one other .zip in the current folder) into a
temporary folder and decodes every file to OUTPUT_DIR/<stem>.png (default: images/)
with decode.py beside this file.  Exit status 2 and one line on a bad input.
"""
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import decode  # noqa: E402  (decode.py beside this file)


def data_file(args):
    if args:
        return Path(args[0])
    found = [p for p in Path.cwd().glob("*.zip") if p.name != "decoder.zip"]
    if len(found) != 1:
        raise decode.UndecodableError(f"give the data zip: {len(found)} candidates in {Path.cwd()}")
    return found[0]


def main(args):
    try:
        data = data_file(args)
        with zipfile.ZipFile(data) as archive, tempfile.TemporaryDirectory() as unpacked:
            for member in archive.infolist():
                name = member.filename
                if "/" in name or "\\\\" in name or name in ("", ".", "..") or name.startswith("."):
                    raise decode.UndecodableError(f"{data.name}: member {name!r} is not a plain file name")
                Path(unpacked, name).write_bytes(archive.read(member))
            return decode.main([unpacked, args[1] if len(args) > 1 else "images"])
    except (decode.UndecodableError, zipfile.BadZipFile, OSError) as exc:
        print(f"decode: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def data_zip_overhead(images: list[str]) -> int:
    """Bytes a target's data zip adds to its files' contents (a stored zip: headers and names)."""
    names = [f"{image}{MEMBER_SUFFIX}".encode("utf-8") for image in images]
    return sum(LOCAL_HEADER + CENTRAL_HEADER + 2 * len(name) for name in names) + END_RECORD


def _write_zip(dest: Path, members: list[tuple[str, bytes, int]], compress: bool) -> None:
    """A deterministic zip of (name, content, permission bits) members, written atomically."""
    with atomic.writing(dest, mode=0o644) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, content, mode in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3  # unix, so that the permission bits are read back
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            archive.writestr(info, content)


def write_decoder_zip(decoder: Path, dest: Path) -> None:
    """``decoder.zip``: every file of the package's ``decoder/`` plus the ``decode`` entry point."""
    members = [(p.relative_to(decoder).as_posix(), p.read_bytes(), 0o755 if os.access(p, os.X_OK) else 0o644)
               for p in sorted(decoder.rglob("*")) if p.is_file()]  # a shipped decoder program stays executable
    _write_zip(dest, [*members, ("decode", ENTRY_POINT.encode("utf-8"), 0o755)], compress=True)


def write_data_zip(images: Path, dest: Path) -> int:
    """A target's ``data.zip``: each image file stored under its image's name; returns its size."""
    members = [(f"{p.stem}{MEMBER_SUFFIX}", p.read_bytes(), 0o644) for p in sorted(images.iterdir()) if p.is_file()]
    _write_zip(dest, members, compress=False)
    return dest.stat().st_size


def run_as_server(decoder_zip: Path, data_zip: Path, workdir: Path) -> tuple[Path, float]:
    """Unzip the decoder into a fresh ``workdir``, copy the data file beside it and run ``./decode``
    there in a fresh process, as the organisers would: (the decoded images' folder, wall time in ms)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with zipfile.ZipFile(decoder_zip) as archive:
        for member in archive.infolist():
            target = workdir / member.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
            target.chmod((member.external_attr >> 16) & 0o777)
    shutil.copyfile(data_zip, workdir / data_zip.name)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-I", "decode"], cwd=workdir, capture_output=True, text=True)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"{decoder_zip}: ./decode failed on {data_zip} (exit {done.returncode}): {last}")
    return workdir / "images", elapsed_ms
