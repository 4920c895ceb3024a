"""The RD table schema: one row per (image, candidate encoding), loaded and validated."""

from pathlib import Path

import numpy as np
import pandas as pd

RD_COLUMNS = ["image", "candidate", "family", "bytes", "pixels", "sse", "msssim"]
# msssim may be empty (NaN): not measured.  A budget on SSE needs no MS-SSIM, so the encode grid
# measures it only where an allocation reads it (``require_msssim``).
OPTIONAL_COLUMNS = ["msssim"]
TEXT_COLUMNS = ["image", "candidate", "family"]
INT_COLUMNS = ["bytes", "pixels"]
NUMBER_COLUMNS = ["bytes", "pixels", "sse", "msssim"]


class BadTableError(ValueError):
    """An unusable RD table; the message is one line naming the source and the problem."""


def _where(df: pd.DataFrame, mask: np.ndarray) -> str:
    """'row R (image I, candidate C)' for the first True in mask, R counted from 1 as in a spreadsheet."""
    i = int(np.flatnonzero(mask)[0])
    return f"row {i + 1} (image {df['image'].iat[i]!r}, candidate {df['candidate'].iat[i]!r})"


def _check_text(df: pd.DataFrame, source: str) -> None:
    for col in TEXT_COLUMNS:
        values = df[col]
        bad = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        if bad.any():
            raise BadTableError(f"{source}: column {col!r} is empty at row {int(np.flatnonzero(bad)[0]) + 1}")


def _numbers(df: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    """The numeric columns as float arrays; BadTableError on text, NaN, inf, negatives, fractions."""
    out = {}
    for col in NUMBER_COLUMNS:
        raw = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        text = np.isnan(raw) & df[col].notna().to_numpy()
        if text.any():
            i = int(np.flatnonzero(text)[0])
            raise BadTableError(f"{source}: column {col!r} is not a number at {_where(df, text)}: {df[col].iat[i]!r}")
        nan = np.isnan(raw) if col not in OPTIONAL_COLUMNS else np.zeros(len(raw), dtype=bool)
        for problem, bad in (("NaN", nan), ("inf", np.isinf(raw)), ("a negative value", raw < 0)):
            if bad.any():
                raise BadTableError(f"{source}: column {col!r} has {problem} at {_where(df, bad)}")
        if col in INT_COLUMNS and (fraction := raw != np.floor(raw)).any():
            i = int(np.flatnonzero(fraction)[0])
            raise BadTableError(f"{source}: column {col!r} must hold integers, got {raw[i]!r} at {_where(df, fraction)}")
        out[col] = raw
    if (zero := out["pixels"] == 0).any():
        raise BadTableError(f"{source}: column 'pixels' is 0 at {_where(df, zero)}")
    if (above := out["msssim"] > 1).any():
        raise BadTableError(f"{source}: column 'msssim' exceeds 1 at {_where(df, above)}")
    return out


def _check_keys(df: pd.DataFrame, source: str) -> None:
    dup = df.duplicated(["image", "candidate"]).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise BadTableError(
            f"{source}: duplicated (image, candidate) ({df['image'].iat[i]!r}, {df['candidate'].iat[i]!r}) at row {i + 1}"
        )
    spread = df.groupby("image", sort=True)["pixels"].agg(["min", "max"])
    differ = spread[spread["min"] != spread["max"]]
    if len(differ):
        image, row = differ.index[0], differ.iloc[0]
        raise BadTableError(f"{source}: image {image!r} has differing pixels between rows ({row['min']} vs {row['max']})")


def validate_rd_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check df against the RD schema and return it typed (text as str, bytes/pixels as int64, sse/msssim float).

    Extra columns are kept untouched. Raises BadTableError with one line naming source and the problem.
    """
    if len(df) == 0:
        raise BadTableError(f"{source}: the RD table is empty")
    missing = [c for c in RD_COLUMNS if c not in df.columns]
    if missing:
        raise BadTableError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(RD_COLUMNS)})")
    df = df.reset_index(drop=True)
    _check_text(df, source)
    numbers = _numbers(df, source)
    typed = df.copy()
    for col in TEXT_COLUMNS:
        typed[col] = df[col].astype(str)
    for col in NUMBER_COLUMNS:
        typed[col] = numbers[col].astype(np.int64) if col in INT_COLUMNS else numbers[col]
    _check_keys(typed, source)
    return typed


def require_msssim(table: pd.DataFrame, why: str) -> None:
    """BadTableError naming the first row whose MS-SSIM was not measured, when ``why`` needs them all."""
    missing = table["msssim"].isna().to_numpy()
    if missing.any():
        raise BadTableError(f"no MS-SSIM measured at {_where(table, missing)}: {why} needs it for every row")


def load_rd_table(path: str | Path) -> pd.DataFrame:
    """Read and validate an RD table CSV; BadTableError (one line naming the file) when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise BadTableError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                         na_values={c: ["", "nan", "NaN", "NA", "null"] for c in NUMBER_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise BadTableError(f"{path}: not a readable CSV ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    return validate_rd_table(df, str(path))


def total_pixels(table: pd.DataFrame) -> int:
    """Pixels of the image set, each image counted once."""
    return int(table.drop_duplicates("image")["pixels"].sum())
