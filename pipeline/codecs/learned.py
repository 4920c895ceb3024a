"""Learned candidates: the adapter between the pipeline and ``models/``.

Everything the pipeline needs to know about learned codecs goes through here:
which candidates a ladder offers, how to build one, and which files a
packaged decoder must carry.  ``models`` is imported lazily, so the classical
ladder works (and ``clic --help`` starts fast) without touching torch models.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import PipelineError
from .base import Codec

LADDER = "psnr"  # the ladder file behind ``--ladder learned``
TRANSPARENT_LADDER = "transparent"  # the learned ladder of the transparent track
PREFIX = "learned-"


def has_trained_weights(ladder: str = LADDER) -> bool:
    """Whether a learned ladder (default: the PSNR one) has its weights file."""
    from models.ladder import has_trained_weights as has_weights

    return has_weights(ladder)


def ladder_names() -> list[str]:
    """The ladder files (``models/ladders/NAME.toml``), trained or not."""
    from models.ladder import available_ladders

    return sorted(available_ladders())


def candidate_names(ladder: str = LADDER) -> list[str]:
    """A learned ladder's candidates (default: the PSNR one), lowest rate first."""
    from models.ladder import load_ladder

    if not has_trained_weights(ladder):
        raise PipelineError(
            f"learned ladder {ladder!r} has no trained weights: train it first "
            "or use --ladder classical"
        )
    return [entry.name for entry in load_ladder(ladder).entries]


def is_learned(name: str) -> bool:
    return name.startswith(PREFIX)


def ladder_of(name: str) -> str:
    """The ladder a learned candidate is a point of (``learned-psnr`` for ``learned-psnr-q2-refine50``)."""
    from models.refine import split_name

    return split_name(name)[0].rsplit("-", 1)[0]


def _refinement(spec: str):
    """The ``models.refine.Refinement`` of a ``--refine`` value, or a one-line PipelineError."""
    from models.refine import Refinement

    try:
        return Refinement.parse(spec)
    except ValueError as error:
        raise PipelineError(str(error)) from None


def refinement_tag(spec: str) -> str:
    """``refine25`` / ``sga500`` for a ``--refine`` value (``25``, ``sga:500``); ``""`` when off."""
    refine = _refinement(spec)
    return refine.tag if refine.steps > 0 else ""


def with_refinement(names: list[str], spec: str) -> list[str]:
    """The candidates with every learned one coded after the latent refinement ``spec``
    (``25``: Adam steps, ``sga:500``: annealing steps; an encoder-only change: same decoder,
    same weights); ``0`` leaves them as they are."""
    refine = _refinement(spec)
    return [refine.name(name) if is_learned(name) else name for name in names]


def _entry(name: str):
    from models.ladder import available_ladders
    from models.refine import split_name

    base, _ = split_name(name)
    for ladder in available_ladders().values():
        for entry in ladder.entries:
            if entry.name == base:
                return entry
    raise PipelineError(f"unknown learned candidate {name!r}")


def make_codec(name: str) -> Codec:
    """The learned candidate called ``name`` (e.g. ``learned-psnr-q2``, ``learned-psnr-q2-refine50``)."""
    from models.codec import LearnedCodec
    from models.refine import split_name
    from models.runtime.zoo import PREFIX

    entry, refine = _entry(name), split_name(name)[1]
    if entry.ladder.architecture.startswith(PREFIX):  # imported with `clic import`
        if refine is not None:
            raise PipelineError(f"{name}: latent refinement applies to the project's own networks only")
        from models.zoo_import import ImportedCodec

        return ImportedCodec(entry)
    return LearnedCodec(entry, refine=refine)


def runtime_source() -> Path:
    """The decoding runtime's folder (``models/runtime``), copied into a packaged decoder."""
    import models.runtime

    return Path(models.runtime.__file__).parent


def ladder_files(names: Iterable[str]) -> list[Path]:
    """The ladder files a decoder needs for these candidates (none for classical ones)."""
    from models.ladder import ladder_file

    return [ladder_file(name) for name in sorted({_entry(n).ladder.name for n in names if is_learned(n)})]


def weight_files(names: Iterable[str]) -> list[Path]:
    """The weights files a decoder needs for these candidates (none for classical ones)."""
    from models.ladder import weight_files as ladder_weights

    ladders = sorted({_entry(n).ladder.name for n in names if is_learned(n)})
    return [path for ladder in ladders for path in ladder_weights(ladder)]
