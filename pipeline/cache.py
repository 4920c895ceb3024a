"""The encode cache: one bitstream and one record file per (image, candidate) cell.

Layout::

    <cache>/<dataset key>/<candidate>/<image stem>.<ext>    the bitstream
    <cache>/<dataset key>/<candidate>/<image stem>.json     its RD record

A cell is finished when its record exists, was made by a codec with the
candidate's current fingerprint (library version, options, weights), and names
a bitstream whose size on disk is the record's ``bytes``.  Both files are written atomically, bitstream
first, so a killed run leaves either a finished cell or an unfinished one
(plus ``.*.tmp`` debris that is never read).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .decode_program import EXTENSIONS, sniff_format
from .errors import PipelineError

COLUMNS = [
    "image", "candidate", "family", "rate_label", "bytes", "pixels", "width", "height",
    "sse", "msssim", "enc_s", "dec_s",
]


def dataset_key(images: list[Path]) -> str:
    """``<folder name>-<12 hex>``: a hash of the images' names and contents."""
    digest = hashlib.sha256()
    for path in images:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"{images[0].parent.name}-{digest.hexdigest()[:12]}"


def extension(data: bytes) -> str:
    """File extension for a bitstream: the classical format's, else ``bin``."""
    fmt = sniff_format(data)
    return EXTENSIONS[fmt] if fmt else "bin"


@dataclass(frozen=True)
class CellStore:
    """The cache folder of one image set."""

    root: Path

    def record_path(self, image: str, candidate: str) -> Path:
        return self.root / candidate / f"{image}.json"

    def load(self, image: str, candidate: str, fingerprint: str | None = None) -> dict | None:
        """The cell's record if the cell is finished (by a codec of this fingerprint), else None."""
        try:
            record = json.loads(self.record_path(image, candidate).read_text())
            size = (self.root / candidate / record["file"]).stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if fingerprint is not None and record.get("fingerprint") != fingerprint:
            return None
        return record if size == record.get("bytes") else None

    def save(self, record: dict, data: bytes) -> dict:
        """Store a cell's bitstream, then its record with ``bytes`` and ``file`` filled in."""
        image, candidate = record["image"], record["candidate"]
        path = self.root / candidate / f"{image}.{extension(data)}"
        atomic.write_bytes(path, data)
        record = {**record, "bytes": path.stat().st_size, "file": path.name}
        atomic.write_text(self.record_path(image, candidate), json.dumps(record, indent=1))
        return record

    def bitstream(self, image: str, candidate: str) -> Path:
        """Path of a finished cell's bitstream."""
        record = self.load(image, candidate)
        if record is None:
            raise PipelineError(f"no finished cell for {image} × {candidate} in {self.root}")
        return self.root / candidate / record["file"]
