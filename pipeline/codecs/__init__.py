"""Candidate registry: ladder name -> candidate names, candidate name -> codec.

Workers of the encode grid receive only candidate *names*; :func:`get_codec`
builds (and for learned codecs, loads the network of) each candidate once per
process.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import PipelineError
from . import classical, command, learned
from .base import Codec

LADDERS = ("learned", "classical", "hybrid")

__all__ = ["LADDERS", "Codec", "default_ladder", "get_codec", "ladder_candidates", "setting_group", "with_refinement"]


def default_ladder(transparent: bool = False) -> str:
    """The candidates a track uses unless told otherwise: for a budget, the learned
    (PSNR) ladder once trained, else ``classical``; for the transparent track, the
    transparent ladder's points beside the classical ones once it is trained, else
    ``classical`` (the low-rate networks stop near 30 dB)."""
    if transparent:
        trained = learned.has_trained_weights(learned.TRANSPARENT_LADDER)
        return f"{learned.TRANSPARENT_LADDER},classical" if trained else "classical"
    return "learned" if learned.has_trained_weights() else "classical"


def ladder_candidates(ladder: str) -> list[str]:
    """Candidate names of a ladder: ``learned``, ``classical`` or ``hybrid`` (both), a
    learned ladder file's name (``psnr``, ``msssim``: ``models/ladders/NAME.toml``), one
    classical family (``jpeg``, ``webp``, ``avif``, ``avif444``, ``j2k``; ``avif444s3``, the
    slow low-rate reference outside ``classical``), one candidate name (``avif-q30``), a
    command-line codec family (``heif``: ``pipeline/codecs/command.py``), or a comma-separated list of any of these (``transparent,classical``,
    ``jpeg-q35,avif-q30``), each candidate once."""
    ladder = ladder.strip()
    if "," in ladder:
        names = [name for part in ladder.split(",") if part.strip() for name in ladder_candidates(part.strip())]
        if names:
            return list(dict.fromkeys(names))
    elif ladder == "learned":
        return learned.candidate_names()
    elif ladder in learned.ladder_names():
        return learned.candidate_names(ladder)
    elif ladder == "classical":
        return classical.candidate_names()
    elif ladder == "hybrid":
        return learned.candidate_names() + classical.candidate_names()
    elif ladder in classical.FAMILIES:
        return classical.candidate_names(ladder)
    elif ladder in command.families():
        return command.candidate_names(ladder)
    elif "-" in ladder:
        return [get_codec(ladder).name]  # PipelineError for an unknown candidate; avif-q030 -> avif-q30
    raise PipelineError(
        f"unknown ladder {ladder!r}; choose one of "
        f"{', '.join(LADDERS + tuple(learned.ladder_names()) + tuple(classical.FAMILIES) + tuple(command.families()))} "
        "or list them and candidates (transparent,classical or jpeg-q35,avif-q30)"
    )


def with_refinement(candidates: list[str], spec: str) -> list[str]:
    """The learned candidates coded after the latent refinement ``spec`` (``learned.with_refinement``)."""
    return learned.with_refinement(candidates, spec)


def setting_group(name: str) -> str:
    """What a candidate is one setting of: its codec family (``avif``), or for a learned
    candidate its ladder (``learned-psnr``: all learned ladders share the family ``learned``)."""
    return learned.ladder_of(name) if learned.is_learned(name) else get_codec(name).family


@lru_cache(maxsize=None)
def get_codec(name: str) -> Codec:
    """The codec of one candidate name, built once per process."""
    if learned.is_learned(name):
        return learned.make_codec(name)
    return command.make_codec(name) if command.is_command(name) else classical.make_codec(name)
