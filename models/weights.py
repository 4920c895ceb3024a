"""Weights on disk: safetensors only (no pickle), float16 for the parameters.

The entropy coder's integer CDF tables are stored beside the parameters, so a
decoder uses exactly the tables the encoder used.  Export rounds the parameters
to float16 *before* computing those tables, so nothing differs after loading.
A ladder with ``precision = "int8"`` stores each large weight as int8 codes and
one float32 scale per output channel (``<name>:scale``), but those its
``keep_float16`` names; loading multiplies them back in float32, exactly as
export did before computing the tables.
Constant buffers that the architecture itself fixes (the checkerboard context
mask, about 0.9 MB) are left out and rebuilt with the network.  A packaged
decoder ships a copy without the tensors only an encoder uses
(:func:`write_decoder_weights`); such a copy decodes, and refuses to encode.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import torch
from compressai.registry import MODELS
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .allocator import keep_freed_memory
from .architecture import GainedAttentionCheckerboard  # noqa: F401  (registers the model)
from .ladder import Ladder, LadderFileError
from .runtime.decoder import SCALE_SUFFIX, dequantize
from .runtime.safetensors import BadWeightsFileError


class BadWeightsError(BadWeightsFileError):
    """A weights file that is missing, unreadable or does not fit its ladder (the decoding
    runtime's error, so one ``except`` catches both)."""


# Buffers fixed by the architecture, not by training: not stored, rebuilt by ``build``.
CONSTANT_BUFFER_SUFFIXES = ("context_prediction.mask",)


def is_constant_buffer(name: str) -> bool:
    return name.endswith(CONSTANT_BUFFER_SUFFIXES)


INT8_MIN_NUMEL = 2048  # smaller parameters (gains, biases, GDN, quantiles) stay float16


def int8_grid(param: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(int8 codes, float32 scale per output channel) of a large weight, symmetric with
    ``bits`` bits (at most 8; fewer only to measure what they would cost); None for a small one.
    The "channel" is the weight's first dimension: a transposed convolution's input channel."""
    if param.ndim < 2 or param.numel() < INT8_MIN_NUMEL:
        return None
    top = 2 ** (bits - 1) - 1
    rows = param.detach().float().reshape(param.shape[0], -1)
    scale = (rows.abs().amax(dim=1) / top).clamp_min(torch.finfo(torch.float32).tiny)
    codes = torch.round(rows / scale[:, None]).clamp_(-top, top).to(torch.int8)
    return codes.reshape(param.shape), scale


# Tensors only an encoder uses: the analysis transforms and the forward gains.
ENCODER_ONLY_PREFIXES = ("g_a.", "latent_codec.hyper.h_a.")
ENCODER_ONLY_TENSORS = ("y_gain", "z_gain")


def is_encoder_only(name: str) -> bool:
    name = re.sub(r"^rung\d+\.", "", name)  # an imported ladder's rungs (``models.runtime.zoo``)
    return name.startswith(ENCODER_ONLY_PREFIXES + ("h_a.",)) or name in ENCODER_ONLY_TENSORS


def write_decoder_weights(source: Path, dest: Path) -> None:
    """Copy a weights file without its encoder-only tensors (about a quarter of its bytes).

    The copy has a single metadata entry: safetensors writes several in varying
    order, and a packaged decoder's bytes must not vary from run to run.
    """
    state = {k: v for k, v in read_raw(source).items() if not is_encoder_only(k.removesuffix(SCALE_SUFFIX))}
    atomic_save(state, dest, {"note": f"decoder part of {source.name} ({weights_note(source)})"})


class EncoderMissingError(BadWeightsError):
    """Encoding asked of a decoder-only copy of the weights."""


def build(ladder: Ladder) -> torch.nn.Module:
    """A freshly initialised network of the ladder's architecture."""
    return MODELS[ladder.architecture](**dict(ladder.arch))


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically (``eval.atomic``), readable by everyone (0644).

    Weights are shipped and read by a decoder that may run as another user.  ``eval`` is
    imported here, not at the top: the packaged decoder carries ``models`` but not ``eval``,
    and only training and export write weights.
    """
    from eval.atomic import writing

    with writing(Path(path), mode=0o644) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def export(net: torch.nn.Module, ladder: Ladder, path: Path, note: str = "") -> None:
    """Round ``net``'s parameters to the ladder's precision (in place), rebuild its entropy tables, save.

    Float buffers become float16 only where that is exact (e.g. the context
    model's 0/1 mask): float16 would flush tiny constants such as the
    likelihood lower bound (1e-9) or the GDN pedestal (2**-36) to zero.
    """
    net.eval()
    int8 = {}
    params = dict(net.named_parameters())
    unknown = sorted(set(ladder.keep_float16) - set(params))
    if unknown:
        raise LadderFileError(f"ladder {ladder.name}: keep_float16 names {unknown[0]!r}, not a parameter of its network")
    with torch.no_grad():
        for name, param in params.items():
            int8_here = ladder.precision == "int8" and name not in ladder.keep_float16
            grid = int8_grid(param) if int8_here else None
            if grid is None:
                param.copy_(param.half().float())
            else:
                int8[name] = grid
                param.copy_(dequantize(*grid))
    net.update(force=True)
    state = {
        k: (v.half() if k in params or _exact_in_half(v) else v)
        for k, v in net.state_dict().items()
        if not is_constant_buffer(k)
    }
    for name, (codes, scale) in int8.items():
        state[name], state[name + SCALE_SUFFIX] = codes, scale
    atomic_save(state, path, {"ladder": ladder.name, "architecture": ladder.architecture, "note": note})


def _exact_in_half(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and torch.equal(tensor.half().float(), tensor.float())


def read_raw(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as stored (never pickle), or one clear line."""
    if not path.is_file():
        raise BadWeightsError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadWeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A weights file's state, int8 parameters multiplied back to float32 by their scales."""
    state = read_raw(path)
    scales = {k.removesuffix(SCALE_SUFFIX): state.pop(k) for k in [k for k in state if k.endswith(SCALE_SUFFIX)]}
    for name, codes in state.items():
        scale = scales.pop(name, None)
        fits = scale is None if codes.dtype != torch.int8 else scale is not None and scale.shape == codes.shape[:1]
        if not fits:
            raise BadWeightsError(f"{path}: {name} is not an int8 tensor with one scale per output channel")
        if scale is not None:
            state[name] = dequantize(codes, scale)
    if scales:
        raise BadWeightsError(f"{path}: {next(iter(scales))}{SCALE_SUFFIX} scales no tensor")
    return state


CHECKPOINT_PREFIX = "net."  # a training checkpoint's network tensors; the rest is optimiser state


def network_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's tensors in a loaded file: all of an export's, a training checkpoint's ``net.`` ones."""
    if not any(k.startswith(CHECKPOINT_PREFIX) for k in state):
        return state
    return {k.removeprefix(CHECKPOINT_PREFIX): v for k, v in state.items() if k.startswith(CHECKPOINT_PREFIX)}


def load_into(
    net: torch.nn.Module, state: dict[str, torch.Tensor], source: Path, allow_new: bool = False,
    decoder_only: bool = False,
) -> list[str]:
    """Load ``state`` into ``net`` (resizing the CDF buffers), in float32.

    Constant buffers (``CONSTANT_BUFFER_SUFFIXES``) keep ``net``'s own values when
    ``state`` lacks them, and so do encoder-only tensors when ``decoder_only``.
    ``allow_new``: other tensors of ``net`` that ``state`` lacks (a module the
    ladder newly enables, e.g. the post-filter) keep their initial values; their
    names are returned.  Anything else that does not fit is an error.
    """
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BadWeightsError(f"{source}: does not fit the ladder's network ({first})") from None
    missing = [k for k in missing if not is_constant_buffer(k) and not (decoder_only and is_encoder_only(k))]
    if unexpected:
        raise BadWeightsError(f"{source}: does not fit the ladder's network (unexpected {unexpected[0]})")
    if missing and not allow_new:
        raise BadWeightsError(f"{source}: does not fit the ladder's network (missing {missing[0]})")
    return missing


def weights_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file (export note, checkpoint step…)."""
    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise BadWeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def weights_note(path: Path) -> str:
    """The note an export wrote into a weights file's metadata (e.g. its training step),
    or a training checkpoint's step."""
    meta = weights_metadata(path)
    return meta.get("note") or (f"step {meta['step']} (checkpoint)" if "step" in meta else "no note")


def weights_digest(path: Path) -> str:
    """SHA-256 (first 16 hex digits) of a weights file: what cached encodings depend on.

    Hashed once per process and file version (path, size, modification time).
    """
    try:
        stat = path.stat()
        return _digest(path.resolve(), stat.st_size, stat.st_mtime_ns)
    except OSError as exc:
        raise BadWeightsError(f"{path}: cannot read weights ({exc.strerror})") from None


@lru_cache(maxsize=16)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@lru_cache(maxsize=8)
def load_network(ladder: Ladder, weights_dir: Path | None = None) -> torch.nn.Module:
    """The trained network of a ladder, ready to code (cached per process).

    Built outside inference mode even when the first caller is in it (a decoder), so
    the cached network's tensors stay usable by autograd (``models.refine``).  A
    decoder-only copy (no encoder-only tensor at all) loads with ``decoder_only``
    set on the network, which :func:`check_can_encode` refuses; ``weights_path``
    names the file for its message.
    """
    keep_freed_memory()  # a process that loads a network codes images: keep its buffers (``models.allocator``)
    path = ladder.weights_path(weights_dir)
    state = load_state(path)
    decoder_only = not any(map(is_encoder_only, state))
    with torch.inference_mode(False):
        net = build(ladder)
        load_into(net, state, path, decoder_only=decoder_only)
        net.decoder_only, net.weights_path = decoder_only, path
        return net.ready_for_coding()


def check_can_encode(net: torch.nn.Module) -> None:
    """Refuse a network loaded from decoder-only weights (its ``g_a`` was never loaded)."""
    if getattr(net, "decoder_only", False):
        source = getattr(net, "weights_path", "these weights")
        raise EncoderMissingError(f"{source}: decoder-only weights (no analysis transform); "
                                  "encode with the ladder's full weights file")
