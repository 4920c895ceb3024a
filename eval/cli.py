"""`eval` command: score a submission folder and optionally record it on the leaderboard."""

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from eval import atomic
from eval.errors import EvalInputError, one_line_errors
from eval.leaderboard import append_rows, leaderboard_row
from eval.score import Scores, score_folders

app = typer.Typer(add_completion=False)


def format_scores(scores: Scores) -> str:
    """Human-readable summary; the aggregate PSNR is the CLIC number, the mean is labelled."""
    lines = [
        f"images: {scores.n_images} ({scores.total_pixels} pixels)",
        f"PSNR (aggregate, one MSE over all pixels): {scores.psnr:.4f} dB",
        f"PSNR (per-image mean): {scores.psnr_mean_per_image:.4f} dB",
        f"MS-SSIM (pixel-weighted): {scores.msssim:.6f}",
    ]
    if scores.bpp is not None:
        lines.append(f"bpp: {scores.bpp:.6f} ({scores.total_bytes} bytes)")
    return "\n".join(lines)


@app.command("eval")
def eval_command(
    originals: Annotated[Path, typer.Argument(help="Folder of original images (png, jpg, ...).")],
    reconstructions: Annotated[
        Path, typer.Argument(help="Folder of reconstructed PNGs, one per original, same file stem.")
    ],
    compressed: Annotated[
        Optional[Path],
        typer.Option(help="Folder of compressed files, one per original with the same stem; sizes give bpp."),
    ] = None,
    entry: Annotated[Optional[str], typer.Option(help="Entry name for the leaderboard row (needed with --csv).")] = None,
    csv: Annotated[
        Optional[Path], typer.Option(help="Leaderboard CSV to append one row to (created with a header if missing).")
    ] = None,
    per_image_csv: Annotated[Optional[Path], typer.Option(help="Write the per-image table to this CSV.")] = None,
    decoding_ms: Annotated[
        Optional[float], typer.Option(min=0, help="Decoding time in ms for the leaderboard row (empty if omitted).")
    ] = None,
    decoder_bytes: Annotated[
        Optional[int], typer.Option(min=0, help="Decoder size in bytes for the leaderboard row (empty if omitted).")
    ] = None,
    date: Annotated[
        Optional[datetime],
        typer.Option(formats=["%Y-%m-%d"], help="Submission date for the leaderboard row (default today)."),
    ] = None,
) -> None:
    """Score reconstructions against originals: aggregate PSNR, per-image mean PSNR, MS-SSIM, bpp."""
    with one_line_errors(EvalInputError, OSError):
        if csv is not None and entry is None:
            raise EvalInputError("--entry is required with --csv")
        scores = score_folders(originals, reconstructions, compressed)
        typer.echo(format_scores(scores))
        if per_image_csv is not None:
            atomic.write_bytes(per_image_csv, scores.per_image.to_csv(index=False).encode("utf-8"))
        if csv is not None:
            day = date.date().isoformat() if date else None
            append_rows(csv, [leaderboard_row(entry, scores, decoding_ms, decoder_bytes, day)])
