"""Benchmark the learned ladder against the classical codecs on Kodak.

Usage::

    .venv/bin/python bench/bench_models.py [--weights PATH] [--images DIR] [--quick]
                                           [--classical-msssim] [--out DIR]

For every learned rate point and every classical setting (each setting applied
to every image): real file bytes -> bpp, aggregate PSNR (one MSE over all RGB
values of the set), pixel-weighted MS-SSIM, and encode/decode seconds per
megapixel.  Then, if the ``allocate`` package offers ``solve_budget``, the best
allocation at 0.15 bpp from the learned ladder alone, from AVIF alone and from
both.  Last, decode speed of a serial autoregressive context model against our
checkerboard model at equal sizes (random init).

Writes ``OUT/models.md`` and ``OUT/models_rd.png`` (default OUT: bench/results).
No assertions: numbers only.  ``--quick`` uses every third image and every
other classical setting.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from eval.images import list_images, load_rgb8  # noqa: E402
from eval.metrics import aggregate_psnr, bpp, msssim_rgb, weighted_msssim  # noqa: E402
from common import cpu_info, load_avg, measure, summarise  # noqa: E402

THREADS = 2
BUDGET_BPP = 0.15


def default_weights() -> Path:
    committed = ROOT / "models" / "weights" / "psnr.safetensors"
    return committed if committed.is_file() else ROOT / "runs" / "psnr" / "export.safetensors"


def learned_codecs(weights: Path, workdir: Path):
    """The psnr ladder's candidates, reading a snapshot of ``weights``."""
    from models.codec import LearnedCodec
    from models.ladder import load_ladder

    ladder = load_ladder("psnr")
    shutil.copyfile(weights, workdir / ladder.weights)  # pin this version (a run may rewrite it)
    return ladder, [LearnedCodec(entry, workdir) for entry in ladder.entries]


def classical_codecs(quick: bool):
    from pipeline.codecs import get_codec, ladder_candidates

    names = ladder_candidates("classical")
    if quick:
        families: dict[str, list[str]] = {}
        for n in names:
            families.setdefault(n.split("-")[0], []).append(n)
        names = [n for group in families.values() for n in group[::2]]
    return [get_codec(n) for n in names]


# -- allocation ------------------------------------------------------------------------------

def allocations(table: pd.DataFrame, images: dict[str, np.ndarray]) -> list[dict]:
    try:
        import allocate
        from allocate.table import validate_rd_table
    except ImportError as exc:
        return [{"set": "(allocate not importable)", "note": str(exc)}]
    if not hasattr(allocate, "solve_budget") or not hasattr(allocate, "cap_from_bpp"):
        return [{"set": "(allocate.solve_budget / cap_from_bpp missing)"}]
    from pipeline.codecs import get_codec

    subsets = {
        "learned only": table["family"] == "learned",
        "AVIF only": table["family"] == "avif",
        "hybrid (learned + all classical)": pd.Series(True, index=table.index),
    }
    out = []
    for label, mask in subsets.items():
        sub = table[mask][["image", "candidate", "family", "bytes", "pixels", "sse", "msssim"]].copy()
        missing = sub["msssim"].isna()
        # MS-SSIM is only the tie-break of the SSE objective; unmeasured cells get a placeholder
        # and the chosen ones are measured below.
        sub.loc[missing, "msssim"] = 0.0
        sub = validate_rd_table(sub, label)
        pixels = int(sub.drop_duplicates("image")["pixels"].sum())
        cap = allocate.cap_from_bpp(BUDGET_BPP, pixels)
        try:
            result = allocate.solve_budget(sub, cap, "sse", "exact")
        except Exception as exc:  # InfeasibleError and friends: report, do not stop the benchmark
            out.append({"set": label, "note": " ".join(str(exc).split())})
            continue
        chosen = result.chosen.copy()
        for i, row in chosen.iterrows():
            if table.loc[(table["image"] == row["image"]) & (table["candidate"] == row["candidate"]), "msssim"].isna().all():
                codec = get_codec(row["candidate"])
                chosen.loc[i, "msssim"] = msssim_rgb(images[row["image"]], codec.decode(codec.encode(images[row["image"]])))
        mix = chosen["family"].value_counts().to_dict()
        out.append({
            "set": label,
            "bpp": bpp(int(chosen["bytes"].sum()), pixels),
            "psnr": aggregate_psnr(float(chosen["sse"].sum()), pixels),
            "msssim": weighted_msssim(chosen["msssim"].to_numpy(), chosen["pixels"].to_numpy()),
            "gap": result.gap,
            "note": ", ".join(f"{k}×{v}" for k, v in sorted(mix.items())),
        })
    return out


# -- serial autoregressive vs checkerboard -----------------------------------------------------

@torch.inference_mode()
def context_model_speed(image: np.ndarray, repeats: int) -> list[dict]:
    from compressai.models import JointAutoregressiveHierarchicalPriors

    from models.architecture import GainedAttentionCheckerboard

    torch.manual_seed(0)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    mp = image.shape[0] * image.shape[1] / 1e6
    results = []

    serial = JointAutoregressiveHierarchicalPriors(N=64, M=96).eval()
    serial.update(force=True)
    ours = GainedAttentionCheckerboard(N=64, M=96, n_rates=5).eval()
    ours.update(force=True)
    cases = {
        "serial autoregressive (CompressAI JointAutoregressiveHierarchicalPriors, mbt2018)": (
            lambda: serial.compress(x),
            lambda out: serial.decompress(out["strings"], out["shape"])["x_hat"],
            lambda out: serial.g_s,
        ),
        "checkerboard, 2 passes (ours: GainedAttentionCheckerboard, rate 2)": (
            lambda: ours.compress(x, 2.0),
            lambda out: ours.decompress(out["strings"], out["shape"], 2.0),
            lambda out: ours.g_s,
        ),
    }
    y = torch.zeros(1, 96, image.shape[0] // 16, image.shape[1] // 16)
    for label, (enc, dec, synthesis) in cases.items():
        serial_model = label.startswith("serial")
        out = enc()
        g_s = synthesis(out)
        g_s(y)  # warm-up
        transform = []
        for _ in range(3):
            t0 = time.perf_counter()
            g_s(y)
            transform.append(time.perf_counter() - t0)
        if not serial_model:
            dec(out)  # warm-up (the serial decode is one long loop: its set-up is negligible)
        total = []
        for _ in range(1 if serial_model else repeats):
            t0 = time.perf_counter()
            x_hat = dec(out)
            total.append(time.perf_counter() - t0)
        n_bytes = sum(len(s[0]) for s in out["strings"])
        results.append({
            "model": label, "dec_s_per_mp": min(total) / mp,
            "latent_s_per_mp": (min(total) - min(transform)) / mp,
            "bpp_random_init": 8 * n_bytes / (image.shape[0] * image.shape[1]),
            "shape": tuple(x_hat.shape[-2:]),
        })
    return results


# -- report ------------------------------------------------------------------------------------------

def fmt(v, digits=3) -> str:
    if isinstance(v, float):
        return "–" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def plot(curves: pd.DataFrame, allocs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for family, curve in curves.groupby("family", sort=False):
        curve = curve.sort_values("bpp")
        style = dict(lw=2.2, marker="o") if family == "learned" else dict(lw=1.2, marker=".")
        ax.plot(curve["bpp"], curve["psnr"], label=family, **style)
    for a in allocs:
        if "bpp" in a:
            ax.scatter([a["bpp"]], [a["psnr"]], marker="*", s=140, zorder=5, label=f"allocated {BUDGET_BPP} bpp: {a['set']}")
    ax.axvline(BUDGET_BPP, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(0.03, 3)
    ax.set_xlabel("bits per pixel (aggregate, real file bytes)")
    ax.set_ylabel("aggregate PSNR (dB)")
    ax.set_title("Kodak: aggregate RD, each setting applied to every image")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="psnr ladder weights (float16 safetensors)")
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--quick", action="store_true", help="every third image, every other classical setting")
    parser.add_argument("--classical-msssim", action="store_true", help="also MS-SSIM of every classical cell (slow)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--ar-repeats", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    weights = (args.weights or default_weights()).resolve()
    paths = list_images(args.images)
    if args.quick:
        paths = paths[::3]
    images = {p.stem: load_rgb8(p) for p in paths}
    total_pixels = sum(im.shape[0] * im.shape[1] for im in images.values())
    print(f"{len(images)} images, {total_pixels / 1e6:.2f} MP; weights {weights}", flush=True)

    from models.weights import weights_note

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        ladder, learned = learned_codecs(weights, Path(tmp))
        note = weights_note(Path(tmp) / ladder.weights)
        for codec in learned:
            rows += measure(codec, images, with_msssim=True)
            print(f"  {codec.name}: {summarise(pd.DataFrame(rows[-len(images):]))}", flush=True)
    classical = classical_codecs(args.quick)
    for codec in classical:
        rows += measure(codec, images, with_msssim=args.classical_msssim)
    print(f"  classical: {len(classical)} settings done", flush=True)
    table = pd.DataFrame(rows)

    per_candidate = []
    for (family, name), group in table.groupby(["family", "candidate"], sort=False):
        per_candidate.append({"family": family, "candidate": name, **summarise(group)})
    curves = pd.DataFrame(per_candidate)

    allocs = allocations(table, images)
    print(f"  allocations: {allocs}", flush=True)
    ar_image = np.ascontiguousarray(load_rgb8(ROOT / "data" / "kodak" / "kodim01.png")[:512, :768])
    speeds = context_model_speed(ar_image, args.ar_repeats)
    print(f"  context models: {speeds}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, allocs, args.out / "models_rd.png")
    table.to_csv(args.out / "models_rd.csv", index=False)

    cmd = " ".join(["python", "bench/bench_models.py", *(argv if argv is not None else sys.argv[1:])])
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    lines = [
        "# Learned ladder vs classical codecs (Kodak)",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, commit {commit} (+ working tree)",
        f"- machine: {cpu_info()}; load average at the end {load_avg()} (this benchmark's"
        " own threads included)",
        f"- images: {len(images)} from `{args.images.relative_to(ROOT) if args.images.is_relative_to(ROOT) else args.images}`"
        f"{' (every third: --quick)' if args.quick else ''}, {total_pixels / 1e6:.2f} MP",
        f"- learned weights: `{weights.relative_to(ROOT) if weights.is_relative_to(ROOT) else weights}`"
        f" ({note or 'no note'}), ladder `psnr` (N={dict(ladder.arch)['N']}, M={dict(ladder.arch)['M']})",
        "- bpp: 8 × Σ file bytes / Σ pixels; PSNR: aggregate (one MSE over all RGB values of the set);"
        " MS-SSIM: pixel-weighted (eval.metrics.msssim_rgb); s/MP: Σ seconds / Σ megapixels, one process,"
        f" {THREADS} torch threads",
        "",
        "## Learned ladder (psnr)",
        "",
        "| candidate | rate | bpp | PSNR (dB) | MS-SSIM | encode s/MP | decode s/MP |",
        "|---|---|---|---|---|---|---|",
    ]
    learned_rates = {c.name: c.entry.rate for c in learned}
    for r in curves[curves["family"] == "learned"].itertuples():
        lines.append(f"| {r.candidate} | {learned_rates[r.candidate]:g} | {r.bpp:.4f} | {r.psnr:.3f} | {fmt(r.msssim, 4)}"
                     f" | {r.enc_s_per_mp:.2f} | {r.dec_s_per_mp:.2f} |")
    lines += [
        "",
        "## Classical codecs (pipeline.codecs, each setting on every image)",
        "",
        "| family | candidate | bpp | PSNR (dB) | MS-SSIM | encode s/MP | decode s/MP |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in curves[curves["family"] != "learned"].itertuples():
        lines.append(f"| {r.family} | {r.candidate} | {r.bpp:.4f} | {r.psnr:.3f} | {fmt(r.msssim, 4)}"
                     f" | {r.enc_s_per_mp:.3f} | {r.dec_s_per_mp:.3f} |")
    if not args.classical_msssim:
        lines += ["", "Classical MS-SSIM not measured (`--classical-msssim` to add it; ≈3 s per image here)."]
    lines += [
        "",
        f"## Allocation at {BUDGET_BPP} bpp (allocate.solve_budget, objective SSE, exact solver)",
        "",
        "| candidates | bpp | PSNR (dB) | MS-SSIM | gap | chosen families / note |",
        "|---|---|---|---|---|---|",
    ]
    for a in allocs:
        lines.append(f"| {a['set']} | {fmt(a.get('bpp', np.nan), 4)} | {fmt(a.get('psnr', np.nan))} |"
                     f" {fmt(a.get('msssim', np.nan), 4)} | {fmt(a.get('gap', np.nan), 1)} | {a.get('note', '')} |")
    lines += [
        "",
        "MS-SSIM of the chosen classical cells is measured after the allocation (it is only the",
        "tie-break of the SSE objective).",
        "",
        f"## Context model: serial autoregressive vs checkerboard (decode of one {ar_image.shape[1]}×{ar_image.shape[0]} image, "
        f"N=64, M=96, random init after update(); checkerboard best of {args.ar_repeats}, serial one run)",
        "",
        "| model | decode s/MP | of which latent decoding s/MP | bpp (random init) |",
        "|---|---|---|---|",
    ]
    for s in speeds:
        lines.append(f"| {s['model']} | {s['dec_s_per_mp']:.2f} | {s['latent_s_per_mp']:.2f} | {s['bpp_random_init']:.3f} |")
    if len(speeds) == 2 and speeds[1]["latent_s_per_mp"] > 0:
        lines += ["", f"Latent decoding: the serial model is {speeds[0]['latent_s_per_mp'] / speeds[1]['latent_s_per_mp']:.0f}× slower "
                      "than the checkerboard (it runs the context model once per latent position; the checkerboard twice per image)."]
    lines += [
        "",
        "\"latent decoding\" = whole decode minus one pass of that model's synthesis transform g_s.",
        "Per-cell numbers: `models_rd.csv`; plot: `models_rd.png`.",
        f"Wall time of this benchmark: {time.perf_counter() - started:.0f} s.",
        "",
    ]
    (args.out / "models.md").write_text("\n".join(lines))
    print((args.out / "models.md").read_text())


if __name__ == "__main__":
    main()
