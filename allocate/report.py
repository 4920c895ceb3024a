"""Plain-text rendering of an allocation for the terminal."""

import pandas as pd

from allocate.metrics import bits_per_pixel, per_image_psnr
from allocate.result import OBJECTIVE_NAMES, Allocation

MAX_CANDIDATES_LISTED = 12


def per_image(chosen: pd.DataFrame) -> pd.DataFrame:
    """image, candidate, bytes, bpp, PSNR and MS-SSIM of each chosen row."""
    return pd.DataFrame({
        "image": chosen["image"], "candidate": chosen["candidate"], "bytes": chosen["bytes"],
        "bpp": 8 * chosen["bytes"] / chosen["pixels"], "psnr": per_image_psnr(chosen["sse"], chosen["pixels"]),
        "msssim": chosen["msssim"],
    })


def _goal(a: Allocation) -> list[str]:
    if a.mode == "budget":
        cap_bpp = bits_per_pixel(a.cap_bytes, a.total_pixels)
        return [
            f"budget: {a.cap_bytes:,} bytes ({cap_bpp:.6f} bpp); minimising {OBJECTIVE_NAMES[a.objective_name]}; solver: {a.solver}",
            f"total: {a.total_bytes:,} bytes ({a.bpp:.6f} bpp), {a.cap_bytes - a.total_bytes:,} under the cap",
        ]
    return [
        f"transparent: PSNR >= {a.min_psnr:g} dB and MS-SSIM >= {a.min_msssim:g}; minimising total bytes; solver: {a.solver}",
        f"total: {a.total_bytes:,} bytes ({a.bpp:.6f} bpp)",
    ]


def _certificate(a: Allocation) -> str:
    if a.gap == 0:
        verdict = "gap 0, optimal"
    else:
        verdict = f"gap {a.gap:.6g} ({a.gap / max(abs(a.objective), 1e-300):.3g} of the objective)"
    return f"certificate: objective {a.objective:.12g}, lower bound {a.lower_bound:.12g}, {verdict}; {a.certificate}"


def _candidate_counts(chosen: pd.DataFrame) -> str:
    counts = chosen["candidate"].value_counts()
    listed = ", ".join(f"{name} ×{n}" for name, n in counts.head(MAX_CANDIDATES_LISTED).items())
    more = len(counts) - MAX_CANDIDATES_LISTED
    return f"chosen candidates: {listed}" + (f", and {more} more" if more > 0 else "")


def format_allocation(a: Allocation, show: int = 20) -> str:
    """The goal, totals, aggregate scores, certificate, timing and the first `show` per-image choices."""
    lines = _goal(a) + [
        f"images: {len(a.chosen)}; aggregate PSNR: {a.psnr:.4f} dB (per-image mean {a.psnr_per_image_mean:.4f} dB); "
        f"pixel-weighted MS-SSIM: {a.msssim:.6f}",
        _certificate(a),
        f"wall time: {a.wall_s:.3f} s",
        _candidate_counts(a.chosen),
    ]
    if show > 0:
        shown = per_image(a.chosen.head(show))
        title = f"per image ({len(shown)} of {len(a.chosen)}):" if len(shown) < len(a.chosen) else "per image:"
        lines += [title, shown.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
    return "\n".join(lines)
