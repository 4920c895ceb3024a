"""The encode cache: one bitstream and one record file per (image, candidate) cell.

Layout::

    <cache>/<dataset key>/<candidate>/<image stem>.<16 hex>.<ext>   the bitstream
    <cache>/<dataset key>/<candidate>/<image stem>.json             its RD record

The 16 hex digits are the start of the bitstream's SHA-256: bitstreams are named by
their content.  A cell is finished when its record exists, was made by a codec with
the candidate's current fingerprint (library version, options, weights), and names
(by a plain file name) a bitstream whose size and content hash are the record's.
Both files are written atomically (``eval.atomic``), bitstream first, so a killed run
leaves either a finished cell or an unfinished one (plus ``.*.tmp`` debris that is
never read).

Concurrency: two runs may share a cache at the same time, without a lock.  Every
write is atomic and a record only ever names a bitstream of exactly the content it
describes, so whatever the interleaving, each record a reader sees is consistent
with its file: two runs that encode the same cell write the same (or, for a
non-deterministic codec, two separate) bitstreams, and the last record renamed
into place wins.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from eval import atomic

from .decode_program import EXTENSIONS, sniff_format
from .errors import PipelineError
from .paths import is_plain_name

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


def content_name(image: str, data: bytes) -> str:
    """``<image>.<16 hex of SHA-256>.<ext>``: the file name of a bitstream in the cache."""
    return f"{image}.{hashlib.sha256(data).hexdigest()[:16]}.{extension(data)}"


@dataclass(frozen=True)
class CellStore:
    """The cache folder of one image set."""

    root: Path

    def record_path(self, image: str, candidate: str) -> Path:
        return self.root / candidate / f"{image}.json"

    def load(self, image: str, candidate: str, fingerprint: str | None = None) -> dict | None:
        """The cell's record if the cell is finished (by a codec of this fingerprint), else None.

        A record that is not JSON, names its file with a folder part, or disagrees with
        the file's size or content hash marks an unfinished cell (it is encoded again).
        """
        try:
            record = json.loads(self.record_path(image, candidate).read_text())
            name = record["file"]
            if not is_plain_name(name) or fingerprint is not None and record.get("fingerprint") != fingerprint:
                return None
            data = (self.root / candidate / name).read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        legacy = f"{image}.{extension(data)}"  # caches written before content-addressed names
        if len(data) != record.get("bytes") or name not in (content_name(image, data), legacy):
            return None
        return record

    def save(self, record: dict, data: bytes) -> dict:
        """Store a cell's bitstream, then its record with ``bytes`` and ``file`` filled in."""
        image, candidate = record["image"], record["candidate"]
        name = content_name(image, data)
        atomic.write_bytes(self.root / candidate / name, data)
        record = {**record, "bytes": len(data), "file": name}
        atomic.write_text(self.record_path(image, candidate), json.dumps(record, indent=1))
        return record

    def update(self, image: str, candidate: str, **fields: object) -> dict:
        """Rewrite a finished cell's record with ``fields`` changed (its bitstream stays)."""
        record = self.load(image, candidate)
        if record is None:
            raise PipelineError(f"no finished cell for {image} × {candidate} in {self.root}")
        record = {**record, **fields}
        atomic.write_text(self.record_path(image, candidate), json.dumps(record, indent=1))
        return record

    def bitstream(self, image: str, candidate: str) -> Path:
        """Path of a finished cell's bitstream."""
        record = self.load(image, candidate)
        if record is None:
            raise PipelineError(f"no finished cell for {image} × {candidate} in {self.root}")
        return self.root / candidate / record["file"]
