"""Report a verified submission: leaderboard row, per-image table, RD plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eval import atomic
from eval.leaderboard import append_rows, leaderboard_row

from .plot import plot_rd
from .verify import Verification


@dataclass(frozen=True)
class ReportFiles:
    leaderboard: Path
    per_image: Path
    plot: Path


def per_image_table(verification: Verification) -> pd.DataFrame:
    """The decoded scores of each image beside the candidate chosen for it."""
    choice = pd.DataFrame(verification.manifest["images"])[["image", "candidate", "family", "rate_label"]]
    return choice.merge(verification.scores.per_image, on="image", validate="one_to_one")


def report(
    out: Path, table: pd.DataFrame, verification: Verification, entry: str, leaderboard: Path
) -> ReportFiles:
    """Append the leaderboard row and write ``per_image.csv`` and ``rd.png`` into ``out``."""
    row = leaderboard_row(entry, verification.scores, verification.decoding_ms, verification.decoder_bytes)
    append_rows(leaderboard, [row])
    per_image = per_image_table(verification)
    files = ReportFiles(leaderboard, out / "per_image.csv", out / "rd.png")
    atomic.write_csv(files.per_image, per_image)
    chosen = table.merge(per_image[["image", "candidate"]], on=["image", "candidate"])
    plot_rd(table, chosen, files.plot, entry)
    return files
