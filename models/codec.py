"""Learned codec: RGB uint8 image <-> bytes of one file (see ``bitstream``).

Images are padded (edge replication) to a multiple of 64, coded with the
ladder's network at one rate, and cropped back on decoding.  Decoding needs
only the file and the weights.

Determinism: which CDF table and mean code each symbol is computed in integers
(:mod:`models.runtime.integer_prior`), so the decoded latent ŷ is the same on every machine,
instruction set, thread count and device.  Only the synthesis transform runs in
floating point: pixels decoded on another machine may differ from the encoder's by
rounding (``docs/reliability.md`` gives the measured size).  :func:`latent_digest`
names a stream's latent, so that a verification elsewhere tells rounding from damage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import ladder as ladders
from .ladder import LadderEntry
from .runtime import bitstream, decoder
from .runtime.bitstream import BadStreamError, Header, is_learned_stream  # noqa: F401  (public API)
from .runtime.decoder import PAD_MULTIPLE, digest, to_image  # noqa: F401  (public API)
from .weights import check_can_encode, load_network, weights_digest

if TYPE_CHECKING:
    from .refine import Refinement


# Bump when a code change alters decoded pixels for the same weights and stream
# (2: channels-last transforms; 3: the last synthesis layer as a sub-pixel convolution;
# 4: the integer probability path), so that cached measurements are redone.
DECODER_REVISION = 4


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 1×3×H×W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255


def pad_to_multiple(x: torch.Tensor) -> torch.Tensor:
    """``x`` padded (edge pixels repeated) to a multiple of ``PAD_MULTIPLE`` each way."""
    h, w = x.shape[-2:]
    ph, pw = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class Coded(NamedTuple):
    """A file and the exact integer latent ŷ it codes: what every decoder entropy-decodes it to
    (the probability path is integer), so the encoder knows the decoded image without decoding."""

    data: bytes
    latent: torch.Tensor


def encode_image(
    entry: LadderEntry, image: np.ndarray, weights_dir: Path | None = None, refine: Refinement | None = None
) -> bytes:
    """Encode one H×W×3 uint8 image at one ladder point (:func:`code_image`'s file)."""
    return code_image(entry, image, weights_dir, refine).data


def code_image(
    entry: LadderEntry, image: np.ndarray, weights_dir: Path | None = None, refine: Refinement | None = None
) -> Coded:
    """Encode one H×W×3 uint8 image at one ladder point; the file and its latent.

    ``refine``: spend encode time on a per-image latent (``models.refine``); the
    refined stream is kept only if its real rate–distortion cost is lower.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {image.shape} {image.dtype}")
    bitstream.check_size(*image.shape[:2])  # before any compute
    plain = encode_latent(entry, image, None, weights_dir)
    if refine is None or refine.steps <= 0:
        return plain
    from .refine import rd_cost, refinable, refine_latent  # encoder only: the packaged decoder never imports it

    if not refinable(entry.ladder, image.shape[:2]):
        return plain
    net = load_network(entry.ladder, weights_dir)
    latents = refine_latent(net, entry.ladder, pad_to_multiple(to_tensor(image)), image.shape[:2], coded_rate(entry), refine)
    refined = encode_latent(entry, image, latents, weights_dir)

    def cost(coded: Coded) -> float:
        return rd_cost(entry.ladder, coded_rate(entry), image, synthesised(coded, weights_dir)[0], len(coded.data))

    return refined if cost(refined) < cost(plain) else plain


def stored_rate(rate: float) -> float:
    """A rate as the header stores it (a multiple of 1/256), so that the decoder's
    gains are exactly the encoder's."""
    return bitstream.rate_code(rate) / 256


def coded_rate(entry: LadderEntry) -> float:
    """The entry's rate as the header stores it (:func:`stored_rate`)."""
    return stored_rate(entry.rate)


def encode_latent(
    entry: LadderEntry, image: np.ndarray, latents: tuple[torch.Tensor, torch.Tensor | None] | None,
    weights_dir: Path | None = None,
) -> Coded:
    """The file for ``image`` coding ``latents`` = (y, z or None) (``None``: the network's own ``g_a(x)``)."""
    y, z = latents if latents is not None else (None, None)
    return code_with(load_network(entry.ladder, weights_dir), entry.ladder.model_id, entry.rate, image, y, z)


def decode_stream(data: bytes, weights_dir: Path | None = None) -> np.ndarray:
    """Decode one file's bytes to an H×W×3 uint8 image."""
    return decode_with_digest(data, weights_dir)[0]


def decode_with_digest(data: bytes, weights_dir: Path | None = None) -> tuple[np.ndarray, str]:
    """(image, :func:`digest` of its integer latent) of one file's bytes, decoded by the runtime
    a packaged decoder ships (:mod:`models.runtime`), with the ladder and weights folders in use."""
    return decoder.decode(data, ladders.LADDER_DIR, weights_dir or ladders.WEIGHTS_DIR)


def synthesised(coded: Coded, weights_dir: Path | None = None) -> tuple[np.ndarray, str]:
    """(image, :func:`digest` of its latent) of a file the encoder just coded: what
    :func:`decode_with_digest` gives, by the same runtime's synthesis, without entropy-decoding the
    latent back (a pure-Python range decoder: at high rates longer than the synthesis)."""
    header = bitstream.parse(coded.data)[0]
    runtime = decoder.decoder_for(header.model_id, ladders.LADDER_DIR, weights_dir or ladders.WEIGHTS_DIR)
    return runtime.image(header, coded.latent), digest(coded.latent)


def latent_digest(data: bytes, weights_dir: Path | None = None) -> str:
    """The :func:`digest` of the latent a file decodes to (entropy decoding only, no synthesis)."""
    header, streams = bitstream.parse(data)
    runtime = decoder.decoder_for(header.model_id, ladders.LADDER_DIR, weights_dir or ladders.WEIGHTS_DIR)
    return digest(runtime.latent(header, streams))


def encode_with(net: torch.nn.Module, model_id: int, rate: float, image: np.ndarray) -> bytes:
    """The file for ``image`` coded by ``net``, whatever weights it holds: the entry point
    for a network in memory (e.g. a benchmark's variant); see :func:`code_with`."""
    return code_with(net, model_id, rate, image).data


@torch.inference_mode()
def code_with(
    net: torch.nn.Module, model_id: int, rate: float, image: np.ndarray, y: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
) -> Coded:
    """The file for ``image`` coded by ``net`` and its latent.  ``rate`` is rounded to what
    the header stores (:func:`stored_rate`); decoder-only weights are refused."""
    check_can_encode(net)
    rate = stored_rate(rate)
    height, width = image.shape[:2]
    out = net.compress(pad_to_multiple(to_tensor(image)), rate, y, z)
    streams = [s[0] for s in out["strings"]]
    return Coded(bitstream.pack(Header(model_id, rate, height, width), streams), out["latent"])


@torch.inference_mode()
def decode_with(net: torch.nn.Module, header: Header, streams: list[bytes]) -> np.ndarray:
    """The image of a parsed file, decoded with ``net``'s weights (e.g. a network in memory)."""
    runtime = net.decoder()
    return runtime.image(header, runtime.latent(header, streams))


class LearnedCodec:
    """One learned ladder point behind the pipeline's ``Codec`` interface.

    ``refine``: encode with latent refinement (``models.refine``); the name gains
    ``-refineN`` or ``-sgaN`` and the fingerprint the settings, the decoder stays the same.
    """

    family = "learned"

    def __init__(self, entry: LadderEntry, weights_dir: Path | None = None, refine: Refinement | None = None):
        self.entry, self.weights_dir = entry, weights_dir
        self.refine = refine if refine is not None and refine.steps > 0 else None
        self.name = self.refine.name(entry.name) if self.refine else entry.name
        self.rate_label = entry.rate_label

    @property
    def fingerprint(self) -> str:
        """Changes with the weights file, the rate, the bitstream version, the decoder revision
        and the refinement settings."""
        digest = weights_digest(self.entry.ladder.weights_path(self.weights_dir))
        rate = bitstream.rate_code(self.entry.rate)
        refine = self.refine
        refine = f" {refine.method} {refine.steps} lr {refine.lr:g} decay {refine.decay:g}" if refine else ""
        return f"lic v{bitstream.VERSION} decoder r{DECODER_REVISION} rate {rate} weights {digest}{refine}"

    def encode(self, image: np.ndarray) -> bytes:
        return self.code(image).data

    def decode(self, data: bytes) -> np.ndarray:
        return decode_stream(data, self.weights_dir)

    def code(self, image: np.ndarray) -> Coded:
        """The file and its latent (:func:`code_image`)."""
        return code_image(self.entry, image, self.weights_dir, self.refine)

    def synthesised(self, coded: Coded) -> tuple[np.ndarray, str]:
        """The decoded image of a file just coded and its latent's digest (:func:`synthesised`)."""
        return synthesised(coded, self.weights_dir)
