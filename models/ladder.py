"""Ladder files: which learned rate points a pipeline may use.

A ladder is one TOML file in ``models/ladders/`` naming one variable-rate
network (architecture, its sizes, its weights file, the λ of each trained gain
row) and the rate points offered to the allocator.  Adding a ladder is a matter
of writing its file and training it, not of code.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

# Where ladder files and weights files are looked up; CLIC_LADDER_DIR and
# CLIC_WEIGHTS_DIR override them (worker processes inherit the variables).
LADDER_DIR = Path(os.environ.get("CLIC_LADDER_DIR") or Path(__file__).parent / "ladders")
WEIGHTS_DIR = Path(os.environ.get("CLIC_WEIGHTS_DIR") or Path(__file__).parent / "weights")


def use_folders(ladders: Path | None = None, weights: Path | None = None) -> None:
    """Look ladder / weights files up in these folders, here and in worker processes started later."""
    global LADDER_DIR, WEIGHTS_DIR
    if ladders is not None:
        os.environ["CLIC_LADDER_DIR"] = str(ladders)
        LADDER_DIR = Path(ladders)
    if weights is not None:
        os.environ["CLIC_WEIGHTS_DIR"] = str(weights)
        WEIGHTS_DIR = Path(weights)


@dataclass(frozen=True)
class Ladder:
    """One network and the rate points it serves."""

    name: str
    model_id: int
    architecture: str
    metric: str  # "mse" or "msssim": the distortion it was trained on
    weights: str  # file name inside the weights folder
    lambdas: tuple[float, ...]  # λ of each trained gain row
    arch: tuple[tuple[str, int | bool], ...]  # network options, e.g. (("M", 96), ("N", 64))
    rates: tuple[float, ...]  # the offered rate points (fractional = interpolated)
    # Each point's bpp on Kodak as last measured (``bench/choose_points.py``), None where not given:
    # the expected range of the ladder, shown by ``clic ladders``.
    kodak_bpp: tuple[float | None, ...]
    precision: str = "float16"  # how the weights file stores large weights (``PRECISIONS``)
    # int8 ladders: parameters stored in float16 all the same, the few whose rounding costs most
    # (``bench/bench_int8_sensitivity.py``)
    keep_float16: tuple[str, ...] = ()

    @property
    def entries(self) -> list[LadderEntry]:
        return [LadderEntry(self, i, r) for i, r in enumerate(self.rates)]

    def lambda_at(self, rate: float) -> float:
        """λ of a (possibly fractional) rate: geometric between rows, as the gains are."""
        rate = min(max(rate, 0.0), len(self.lambdas) - 1.0)
        lo = min(int(rate), len(self.lambdas) - 2)
        t = rate - lo
        return self.lambdas[lo] ** (1 - t) * self.lambdas[lo + 1] ** t

    def weights_path(self, weights_dir: Path | None = None) -> Path:
        return (weights_dir or WEIGHTS_DIR) / self.weights


@dataclass(frozen=True)
class LadderEntry:
    """One candidate of the allocator: a ladder's network at one rate."""

    ladder: Ladder
    index: int
    rate: float

    @property
    def name(self) -> str:
        return f"learned-{self.ladder.name}-q{self.index + 1}"

    @property
    def kodak_bpp(self) -> float | None:
        """This point's measured bpp on Kodak, if the ladder file gives it."""
        return self.ladder.kodak_bpp[self.index]

    @property
    def rate_label(self) -> str:
        return f"rate={self.rate:g} ({self.ladder.metric})"


class UnknownLadderError(ValueError):
    """No ladder file of that name or model id."""


class LadderFileError(ValueError):
    """A ladder file with a value this code cannot use."""


# Weights storage: float16 throughout, or int8 with one scale per output channel for
# the large weights but those ``keep_float16`` names (``models.weights``; about half
# the bytes, for a third ladder).
PRECISIONS = ("float16", "int8")


def _parse(path: Path) -> Ladder:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    precision = raw.get("precision", "float16")
    if precision not in PRECISIONS:
        raise LadderFileError(f"{path}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    keep_float16 = raw.get("keep_float16", [])
    if not (isinstance(keep_float16, list) and all(isinstance(v, str) for v in keep_float16)):
        raise LadderFileError(f"{path}: keep_float16 must be a list of parameter names, got {keep_float16!r}")
    if keep_float16 and precision != "int8":
        raise LadderFileError(f"{path}: keep_float16 applies to int8 weights only (precision is {precision!r})")
    points = raw["points"]
    kodak_bpp = tuple(p.get("kodak_bpp") for p in points)
    if any(v is not None and not (isinstance(v, (int, float)) and v > 0) for v in kodak_bpp):
        raise LadderFileError(f"{path}: kodak_bpp must be a positive number of bits per pixel, got {kodak_bpp}")
    return Ladder(
        name=raw["name"],
        model_id=int(raw["model_id"]),
        architecture=raw["architecture"],
        metric=raw["metric"],
        weights=raw["weights"],
        lambdas=tuple(float(v) for v in raw["lambdas"]),
        arch=tuple(sorted(raw["arch"].items())),
        rates=tuple(float(p["rate"]) for p in points),
        precision=precision,
        keep_float16=tuple(keep_float16),
        kodak_bpp=tuple(None if v is None else float(v) for v in kodak_bpp),
    )


def available_ladders() -> dict[str, Ladder]:
    """Every ladder file shipped in ``models/ladders``, by name."""
    return {lad.name: lad for lad in map(_parse, sorted(LADDER_DIR.glob("*.toml")))}


def load_ladder(name: str = "psnr") -> Ladder:
    ladders = available_ladders()
    if name not in ladders:
        raise UnknownLadderError(f"unknown ladder {name!r}; known: {', '.join(sorted(ladders))}")
    return ladders[name]


def ladder_file(name: str) -> Path:
    """The TOML file that defines the ladder called ``name`` (a packaged decoder ships it)."""
    for path in sorted(LADDER_DIR.glob("*.toml")):
        if _parse(path).name == name:
            return path
    raise UnknownLadderError(f"unknown ladder {name!r}")


def rewrite_points(path: Path, points: list[tuple[float, float]]) -> None:
    """Replace a ladder file's ``[[points]]`` tables (the first and all below it) by (rate,
    Kodak bpp) pairs, keeping everything above them; atomically (``eval`` is imported here,
    not at the top: the packaged decoder carries this module but not ``eval``)."""
    from eval.atomic import write_text

    text = path.read_text()
    if "[[points]]" not in text:
        raise LadderFileError(f"{path}: no [[points]] to replace")
    head = text[: text.index("[[points]]")]
    write_text(path, head + "\n".join(f"[[points]]\nrate = {r:g}\nkodak_bpp = {b:.4f}\n" for r, b in points))


def ladder_by_model_id(model_id: int) -> Ladder:
    for ladder in available_ladders().values():
        if ladder.model_id == model_id:
            return ladder
    raise UnknownLadderError(f"unknown model id {model_id}")


def weight_files(name: str) -> list[Path]:
    """The weights a decoder of this ladder needs besides the code (and ladder files)."""
    return [load_ladder(name).weights_path()]


def has_trained_weights(name: str) -> bool:
    try:
        return load_ladder(name).weights_path().is_file()
    except UnknownLadderError:
        return False
