"""Decode a learned file: bitstream -> integer latent -> image, with torch and numpy only.

This folder (``models/runtime``) is everything a packaged decoder ships of the learned
codec: the file format, the integer probability path, a pure-Python range decoder,
the synthesis transform and a safetensors reader.  Nothing here imports CompressAI or
anything of the project outside the folder, so the packaged ``decode.py`` runs where
only Python, numpy, Pillow and torch are installed; the encode grid decodes through the
same code, so what it measured is what the package decodes.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import bitstream, zoo
from .bitstream import BadStreamError, Header
from .integer_prior import HYPER, CoderTables, IntegerPrior, exact_gain, to_float
from .latents import PAD_MULTIPLE, bottleneck_symbols, latent_shapes, to_image  # noqa: F401  (public API)
from .safetensors import BadWeightsFileError, read_safetensors
from .synthesis import synthesis
from .zoo import ZooDecoder

SCALE_SUFFIX = ":scale"  # "<parameter>:scale": the per-output-channel step of an int8 parameter


@dataclass(frozen=True)
class NetworkSpec:
    """What a decoder needs of a ladder file: its network's shape and weights file."""

    model_id: int
    weights: str
    N: int
    M: int
    stride: int
    postfilter: bool
    architecture: str = "gained-attn-checkerboard"  # or "compressai:NAME" (``zoo``)

    @classmethod
    def read(cls, path: Path) -> NetworkSpec:
        with path.open("rb") as f:
            raw = tomllib.load(f)
        arch = raw["arch"]
        return cls(int(raw["model_id"]), raw["weights"], int(arch.get("N", 96)), int(arch.get("M", 128)),
                   int(arch.get("stride", 16)), bool(arch.get("postfilter", False)), raw["architecture"])


def network_specs(ladder_dir: Path) -> dict[int, NetworkSpec]:
    """Every ladder file of ``ladder_dir``, by model id."""
    return {spec.model_id: spec for spec in map(NetworkSpec.read, sorted(Path(ladder_dir).glob("*.toml")))}


def dequantize(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """An int8 parameter's float32 values: its codes times one scale per output channel."""
    return codes.float() * scale.reshape(-1, *[1] * (codes.ndim - 1))


def float_state(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A weights file's tensors as the network uses them: int8 parameters multiplied back by their
    scales, floating-point tensors in float32 (integer CDF tables stay integers)."""
    scales = {k.removesuffix(SCALE_SUFFIX): v for k, v in raw.items() if k.endswith(SCALE_SUFFIX)}
    state = {}
    for name, value in raw.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if name in scales:
            value = dequantize(value, scales[name])
        state[name] = value.float() if value.is_floating_point() else value
    return state


def digest(y_hat: torch.Tensor) -> str:
    """SHA-256 (first 16 hex digits) of an integer latent: equal wherever the stream decodes correctly."""
    return hashlib.sha256(y_hat.numpy().astype("<i8").tobytes()).hexdigest()[:16]


class Decoder:
    """One ladder's network for decoding: the integer prior, the entropy bottleneck's tables
    and the float synthesis, from a (decoder-only or full) state dict in float32."""

    def __init__(self, spec: NetworkSpec, state: dict[str, torch.Tensor], source: object = "weights"):
        self.spec = spec
        try:
            self.prior = IntegerPrior(state)
            eb = HYPER + "entropy_bottleneck"
            self.z_tables = CoderTables.of(state, eb)
            self.medians = state[f"{eb}.quantiles"][:, 0, 1].reshape(1, -1, 1, 1)
            self.y_gain_inv, self.z_gain_inv = state["y_gain_inv"], state["z_gain_inv"]
            self.g_s = synthesis(spec.N, spec.M, spec.stride, spec.postfilter)
            self.g_s.load_state_dict({k.removeprefix("g_s."): v for k, v in state.items() if k.startswith("g_s.")})
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise BadWeightsFileError(f"{source}: does not fit its ladder's network ({first})") from None
        self.g_s.eval().to(memory_format=torch.channels_last)

    @classmethod
    def from_file(cls, spec: NetworkSpec, weights: Path) -> Decoder:
        return cls(spec, float_state(read_safetensors(weights)), weights)

    def z_hat(self, stream: bytes, shape: tuple[int, int, int]) -> torch.Tensor:
        """The decoded hyper-latent (float32): symbols plus the bottleneck's medians."""
        return bottleneck_symbols(stream, shape, self.z_tables, self.medians)

    def latent(self, header: Header, streams: list[bytes]) -> torch.Tensor:
        """The exact integer latent ŷ of a parsed file."""
        shapes = latent_shapes(self.spec.N, self.spec.M, self.spec.stride, header.height, header.width)
        z_gain_inv = exact_gain(self.z_gain_inv, header.rate)
        try:
            side = self.prior.hyper(self.z_hat(streams[2], shapes["hyper"]), z_gain_inv)
            return self.prior.decode_y(streams[:2], side)
        except (ValueError, IndexError, RuntimeError) as exc:
            raise BadStreamError(f"corrupt entropy-coded data ({exc})") from None

    @torch.inference_mode()
    def image(self, header: Header, y_hat: torch.Tensor) -> np.ndarray:
        """The image of an integer latent (the synthesis, in floating point), cropped to the header's size."""
        x = synthesise(self.g_s, y_hat, exact_gain(self.y_gain_inv, header.rate))
        return to_image(x[..., : header.height, : header.width])


def synthesise(g_s: torch.nn.Module, y_hat: torch.Tensor, y_gain_inv: torch.Tensor) -> torch.Tensor:
    """``g_s`` of an integer latent times the rate's inverse gain (float64 (M,)): 1×3×H×W in [0, 1]."""
    y = to_float(y_hat) * y_gain_inv.float().view(1, -1, 1, 1)
    return g_s(y.contiguous(memory_format=torch.channels_last)).clamp_(0, 1).contiguous()


@lru_cache(maxsize=8)
def _decoder(spec: NetworkSpec, weights: Path, size: int, mtime_ns: int) -> Decoder | ZooDecoder:
    if spec.architecture.startswith(zoo.PREFIX):
        return ZooDecoder(spec.architecture, float_state(read_safetensors(weights)), weights)
    return Decoder.from_file(spec, weights)


def decoder_for(model_id: int, ladder_dir: Path, weights_dir: Path) -> Decoder | ZooDecoder:
    """The decoder of a model id (cached per process and weights file version)."""
    spec = network_specs(ladder_dir).get(model_id)
    if spec is None:
        raise BadStreamError(f"unknown model id {model_id}")
    path = Path(weights_dir) / spec.weights
    try:
        stat = path.stat()
    except OSError as exc:
        raise BadWeightsFileError(f"{path}: cannot read weights ({exc.strerror})") from None
    return _decoder(spec, path, stat.st_size, stat.st_mtime_ns)


@torch.inference_mode()
def decode(data: bytes, ladder_dir: Path, weights_dir: Path) -> tuple[np.ndarray, str]:
    """(image, latent digest) of one learned file's bytes."""
    header, streams = bitstream.parse(data)
    decoder = decoder_for(header.model_id, ladder_dir, weights_dir)
    y_hat = decoder.latent(header, streams)
    return decoder.image(header, y_hat), digest(y_hat)
