"""CLIC leaderboard rows, and the leaderboard CSV: one row per entry, written atomically."""

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
    """One leaderboard row: PSNR rounded to 4 decimals, MS-SSIM to 6, bpp to 6, decoding time
    to whole milliseconds (as a spreadsheet reads them).

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
        "Decoding Time (ms)": _or_empty(None if decoding_ms is None else round(decoding_ms)),
        "Decoder Size (Bytes)": _or_empty(decoder_bytes),
        "Date Submitted": day.isoformat(),
        "bpp": _or_empty(None if scores.bpp is None else round(scores.bpp, 6)),
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
    """Add rows to the leaderboard CSV atomically; a row replaces an existing row of the same
    ``Entry`` in place (a rerun updates its entry), others are appended; a missing or empty
    file gets the header first."""
    path = Path(csv_path)
    rows = list(rows)
    for row in rows:
        if set(row) != set(LEADERBOARD_COLUMNS):
            raise ValueError(f"row keys {sorted(row)} are not the leaderboard columns")
    existing = _existing_csv(path)
    table = list(csv.DictReader(io.StringIO(existing))) if existing else []
    position = {row["Entry"]: i for i, row in enumerate(table)}
    for row in rows:
        if row["Entry"] in position:
            table[position[row["Entry"]]] = dict(row)
        else:
            position[row["Entry"]] = len(table)
            table.append(dict(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEADERBOARD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic.write_bytes(path, out.getvalue().encode("utf-8"))
