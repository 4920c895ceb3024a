"""Score a folder of reconstructions against the originals, CLIC style."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from eval.errors import EvalInputError
from eval.images import by_stem, list_images, load_rgb8
from eval.metrics import aggregate_psnr, bpp, mean_psnr, msssim_rgb, sse, weighted_msssim


@dataclass(frozen=True, eq=False)
class Scores:
    """Set-level scores; per_image has one row per image (image, width, height, pixels, sse,
    psnr, msssim, and bytes, bpp when compressed files were given)."""

    psnr: float  # aggregate: one MSE over all RGB values of all images
    psnr_mean_per_image: float
    msssim: float  # pixel-weighted mean of per-image MS-SSIM
    total_sse: float
    total_pixels: int
    total_bytes: int | None
    bpp: float | None
    n_images: int
    per_image: pd.DataFrame


def _more(stems: list[str]) -> str:
    return f" (and {len(stems) - 1} more)" if len(stems) > 1 else ""


def _require_same_stems(originals: dict[str, Path], found: dict[str, Path], what: str, folder: Path) -> None:
    """Raise EvalInputError naming the first original without a match in folder, or the first extra file."""
    missing = sorted(originals.keys() - found.keys())
    if missing:
        raise EvalInputError(f"{folder}: no {what} for original {originals[missing[0]].name}{_more(missing)}")
    extra = sorted(found.keys() - originals.keys())
    if extra:
        raise EvalInputError(f"{found[extra[0]]}: unexpected {what}, no original has stem {extra[0]!r}{_more(extra)}")


def _reconstructions(originals: dict[str, Path], folder: Path) -> dict[str, Path]:
    found = by_stem(list_images(folder))
    for path in found.values():
        if path.suffix.lower() != ".png":
            raise EvalInputError(f"{path}: reconstructions must be PNG files")
    _require_same_stems(originals, found, "reconstruction", folder)
    return found


def _compressed_sizes(originals: dict[str, Path], folder: Path) -> dict[str, int]:
    """On-disk size in bytes of each original's compressed file (any extension, same stem).

    Every regular non-hidden file must belong to an original, so no data goes uncounted.
    """
    if not folder.is_dir():
        raise EvalInputError(f"{folder}: compressed folder not found")
    found = by_stem(p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))
    _require_same_stems(originals, found, "compressed file", folder)
    return {stem: path.stat().st_size for stem, path in found.items()}


Pair = tuple[str, Path, Path]  # (stem, original, reconstruction)


def score_pair(stem: str, original: Path, reconstruction: Path) -> dict[str, object]:
    """One image's row of ``Scores.per_image`` (without bytes)."""
    a, b = load_rgb8(original), load_rgb8(reconstruction)
    if a.shape != b.shape:
        raise EvalInputError(
            f"{reconstruction}: size {b.shape[1]}x{b.shape[0]} differs from original "
            f"{original.name} {a.shape[1]}x{a.shape[0]}"
        )
    height, width = a.shape[:2]
    error = sse(a, b)
    return {
        "image": stem, "width": width, "height": height, "pixels": width * height,
        "sse": error, "psnr": aggregate_psnr(error, width * height), "msssim": msssim_rgb(a, b),
    }


def _in_turn(pairs: list[Pair]) -> Iterable[dict[str, object]]:
    return (score_pair(*pair) for pair in tqdm(pairs, desc="scoring", unit="img", disable=None))


def score_folders(
    originals: Path, reconstructions: Path, compressed: Path | None = None,
    score_pairs: Callable[[list[Pair]], Iterable[dict[str, object]]] = _in_turn,
) -> Scores:
    """Match files by stem and score them; raises EvalInputError (one line) on a missing,
    extra, non-PNG or size-mismatched reconstruction, or a bad image.

    ``score_pairs`` maps :func:`score_pair` over the pairs, in any order (default: one after
    the other, here); a caller may spread them over worker processes."""
    original_paths = by_stem(list_images(originals))
    recon_paths = _reconstructions(original_paths, Path(reconstructions))
    sizes = _compressed_sizes(original_paths, Path(compressed)) if compressed is not None else None
    order = {stem: k for k, stem in enumerate(original_paths)}
    rows = sorted(score_pairs([(stem, path, recon_paths[stem]) for stem, path in original_paths.items()]),
                  key=lambda row: order[row["image"]])
    per_image = pd.DataFrame(rows)
    total_pixels = int(per_image["pixels"].sum())
    total_bytes = None
    if sizes is not None:
        per_image["bytes"] = per_image["image"].map(sizes)
        per_image["bpp"] = [bpp(n, p) for n, p in zip(per_image["bytes"], per_image["pixels"])]
        total_bytes = int(per_image["bytes"].sum())
    total_sse = float(per_image["sse"].sum())
    return Scores(
        psnr=aggregate_psnr(total_sse, total_pixels),
        psnr_mean_per_image=mean_psnr(per_image["psnr"].tolist()),
        msssim=weighted_msssim(per_image["msssim"].tolist(), per_image["pixels"].tolist()),
        total_sse=total_sse,
        total_pixels=total_pixels,
        total_bytes=total_bytes,
        bpp=None if total_bytes is None else bpp(total_bytes, total_pixels),
        n_images=len(per_image),
        per_image=per_image,
    )
