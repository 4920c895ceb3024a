"""How much latent refinement saved per image, from two RD tables of the same images.

    .venv/bin/python bench/refine_in_allocation.py [--plain out/lowrate/rd.csv] [--refined out/refined/rd.csv]
                                                   [--bpp 0.15]

``--refined`` is the RD table of a ``clic submission --refine N`` run; each of its
``…-refineN`` cells is compared with the plain cell of the same image and point in
``--plain``.  Per point: the change of the set's bytes and aggregate PSNR, and how
many images the encoder refined (kept a stream other than the plain one).  Then
the exact allocation at ``--bpp`` over the plain and the refined points, and the
bytes-for-PSNR slope of the plain ladder between the points the allocation uses
(what a byte saving is worth in dB).  Reads tables only: no coding.
Writes ``bench/results/refine_allocation.md``.
"""

from __future__ import annotations

import argparse
import datetime
import math
from pathlib import Path

import pandas as pd

from allocate.solve import solve_budget
from bench_pipeline import markdown_table
from eval.metrics import aggregate_psnr
from models.refine import split_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def set_psnr(cells: pd.DataFrame) -> float:
    return aggregate_psnr(cells["sse"].sum(), cells["pixels"].sum())


def per_point(plain: pd.DataFrame, refined: pd.DataFrame) -> pd.DataFrame:
    refined = refined.assign(point=[split_name(n)[0] for n in refined["candidate"]])
    pairs = plain.rename(columns={"candidate": "point"}).merge(refined, on=["image", "point"], suffixes=("", "_r"))
    return pd.DataFrame([
        {"point": point, "images": len(g), "refined images": int((g["bytes_r"] != g["bytes"]).sum()),
         "bytes change": g["bytes_r"].sum() / g["bytes"].sum() - 1,
         "PSNR change (dB)": set_psnr(g.assign(sse=g["sse_r"])) - set_psnr(g)}
        for point, g in pairs.groupby("point")
    ])


def allocation(table: pd.DataFrame, cap: int) -> dict:
    chosen = solve_budget(table, cap).chosen
    return {"PSNR (dB)": set_psnr(chosen), "bytes": int(chosen["bytes"].sum()),
            "points used": ", ".join(f"{k} × {v}" for k, v in chosen["candidate"].value_counts().items())}


def slope(plain: pd.DataFrame, points: list[str]) -> float:
    """dB per e-fold of the set's bytes between the lowest and highest of ``points``."""
    curve = {p: (plain.loc[plain["candidate"] == p, "bytes"].sum(), set_psnr(plain[plain["candidate"] == p]))
             for p in points}
    (b0, q0), (b1, q1) = min(curve.values()), max(curve.values())
    return (q1 - q0) / math.log(b1 / b0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=Path, default=ROOT / "out" / "lowrate" / "rd.csv")
    parser.add_argument("--refined", type=Path, default=ROOT / "out" / "refined" / "rd.csv")
    parser.add_argument("--bpp", type=float, default=0.15)
    args = parser.parse_args(argv)
    plain, refined = pd.read_csv(args.plain), pd.read_csv(args.refined)
    refined = refined[refined["image"].isin(plain["image"])]
    points = sorted({split_name(n)[0] for n in refined["candidate"]})
    plain = plain[plain["candidate"].isin(points)]
    cap = math.floor(args.bpp * plain.groupby("image")["pixels"].first().sum() / 8)
    runs = pd.DataFrame([{"candidates": "plain", **allocation(plain, cap)},
                         {"candidates": "refined", **allocation(refined, cap)}])
    used = [split_name(n)[0] for n in solve_budget(plain, cap).chosen["candidate"].unique()]
    command = "python bench/refine_in_allocation.py " + " ".join(argv if argv is not None else [])
    text = "\n".join([
        "# Latent refinement in a real allocation", "",
        f"`{command.strip()}`, {datetime.date.today()}; tables `{shown(args.plain)}` and `{shown(args.refined)}` "
        f"({plain['image'].nunique()} images; points {', '.join(points)}).", "",
        markdown_table(per_point(plain, refined), ".4f"), "",
        f"Exact allocation at {args.bpp} bpp ({cap:,} bytes):", "", markdown_table(runs, ".4f"), "",
        f"Slope of the plain ladder between {', '.join(sorted(used))}: "
        f"{slope(plain, used if len(used) > 1 else points):.2f} dB per e-fold of bytes.", "",
    ])
    (RESULTS / "refine_allocation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
