"""Candidate registry: ladder name -> candidate names, candidate name -> codec.

Workers of the encode grid receive only candidate *names*; :func:`get_codec`
builds (and for learned codecs, loads the network of) each candidate once per
process.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import PipelineError
from . import classical, learned
from .base import Codec

LADDERS = ("learned", "classical", "hybrid")

__all__ = ["LADDERS", "Codec", "default_ladder", "get_codec", "ladder_candidates", "with_refinement"]


def default_ladder() -> str:
    """``learned`` once its weights are trained, else ``classical``."""
    return "learned" if learned.has_trained_weights() else "classical"


def ladder_candidates(ladder: str) -> list[str]:
    """Candidate names of a ladder: ``learned``, ``classical`` or ``hybrid`` (both), a
    learned ladder file's name (``psnr``, ``msssim``: ``models/ladders/NAME.toml``), one
    classical family (``jpeg``, ``webp``, ``avif``, ``j2k``), or an explicit
    comma-separated list of candidate names (``jpeg-q35,avif-q30``)."""
    if ladder == "learned":
        return learned.candidate_names()
    if ladder in learned.ladder_names():
        return learned.candidate_names(ladder)
    if ladder == "classical":
        return classical.candidate_names()
    if ladder == "hybrid":
        return learned.candidate_names() + classical.candidate_names()
    if ladder in classical.FAMILIES:
        return classical.candidate_names(ladder)
    if "," in ladder or "-" in ladder:
        names = list(dict.fromkeys(n.strip() for n in ladder.split(",") if n.strip()))
        for name in names:
            get_codec(name)  # PipelineError for an unknown candidate
        if names:
            return names
    raise PipelineError(
        f"unknown ladder {ladder!r}; choose one of "
        f"{', '.join(LADDERS + tuple(learned.ladder_names()) + tuple(classical.FAMILIES))} "
        "or list candidates (jpeg-q35,avif-q30)"
    )


def with_refinement(candidates: list[str], steps: int) -> list[str]:
    """The learned candidates coded after ``steps`` of latent refinement (``learned.with_refinement``)."""
    return learned.with_refinement(candidates, steps)


@lru_cache(maxsize=None)
def get_codec(name: str) -> Codec:
    """The codec of one candidate name, built once per process."""
    return learned.make_codec(name) if learned.is_learned(name) else classical.make_codec(name)
