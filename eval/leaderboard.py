"""CLIC leaderboard rows and atomic appends to the leaderboard CSV."""

import csv
import datetime
import io
from collections.abc import Iterable, Mapping
from itertools import zip_longest
from pathlib import Path

from eval import atomic
from eval.errors import EvalInputError
from eval.score import Scores

LEADERBOARD_COLUMNS = [
    "Entry", "PSNR", "MOS", "MS-SSIM", "Images Size (Bytes)", "Decoding Time (ms)",
    "Decoder Size (Bytes)", "Date Submitted", "bpp", "PSNR (per-image mean)",
]


def _or_empty(value: float | None) -> float | str:
    return "" if value is None else value


def leaderboard_row(
    entry: str,
    scores: Scores,
    decoding_ms: float | None,
    decoder_bytes: int | None,
    date: str | None = None,
) -> dict[str, object]:
    """One leaderboard row: PSNR rounded to 4 decimals, MS-SSIM to 6, bpp unrounded.

    MOS comes from human raters and is always left empty; unknown values are empty;
    date is an ISO date (YYYY-MM-DD), today by default.
    """
    if not entry.strip() or "\n" in entry or "\r" in entry:
        raise EvalInputError(f"entry name must be one non-empty line, got {entry!r}")
    try:
        day = datetime.date.fromisoformat(date) if date else datetime.date.today()
    except ValueError as e:
        raise EvalInputError(f"date must be YYYY-MM-DD, got {date!r}") from e
    return {
        "Entry": entry,
        "PSNR": round(scores.psnr, 4),
        "MOS": "",
        "MS-SSIM": round(scores.msssim, 6),
        "Images Size (Bytes)": _or_empty(scores.total_bytes),
        "Decoding Time (ms)": _or_empty(decoding_ms),
        "Decoder Size (Bytes)": _or_empty(decoder_bytes),
        "Date Submitted": day.isoformat(),
        "bpp": _or_empty(scores.bpp),
        "PSNR (per-image mean)": round(scores.psnr_mean_per_image, 4),
    }


def _existing_csv(path: Path) -> str:
    """The CSV's current text ('' if absent or empty); EvalInputError if its header is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    except UnicodeDecodeError as e:
        raise EvalInputError(f"{path}: not a UTF-8 CSV file") from e
    if not text:
        return ""
    header = next(csv.reader(io.StringIO(text)))
    for i, (got, want) in enumerate(zip_longest(header, LEADERBOARD_COLUMNS)):
        if got != want:
            raise EvalInputError(
                f"{path}: header differs from the leaderboard columns at column {i + 1}: {got!r}, expected {want!r}"
            )
    return text if text.endswith("\n") else text + "\n"


def append_rows(csv_path: Path, rows: Iterable[Mapping[str, object]]) -> None:
    """Append rows to the leaderboard CSV atomically; a missing or empty file gets the header first."""
    path = Path(csv_path)
    rows = list(rows)
    for row in rows:
        if set(row) != set(LEADERBOARD_COLUMNS):
            raise ValueError(f"row keys {sorted(row)} are not the leaderboard columns")
    existing = _existing_csv(path)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEADERBOARD_COLUMNS, lineterminator="\n")
    if not existing:
        writer.writeheader()
    writer.writerows(rows)
    atomic.write_bytes(path, (existing + out.getvalue()).encode("utf-8"))
