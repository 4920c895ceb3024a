"""Bring your own CompressAI models: ``clic import`` and the encoder of imported ladders.

``import_checkpoints`` turns one CompressAI checkpoint per rung (a raw state dict, or a
dict holding ``state_dict``, as CompressAI's training example writes them) into the
project's form: one safetensors weights file (parameters in float16, every rung's tensors
prefixed ``rung<i>.``, entropy tables rebuilt from the stored parameters) and a ladder
file naming ``architecture = "compressai:NAME"``.  From then on the ladder is a ladder
like the built-in ones: candidates ``learned-NAME-q1`` …, the cache keyed by the weights
digest, files with the project's header, packages with only the decoder's tensors, and
decoding by :mod:`models.runtime.zoo` in integers.

Checkpoints are read with ``torch.load(weights_only=True)``: never full unpickling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from eval.atomic import write_text

from . import ladder as ladders
from .architecture import _rans_encode
from .ladder import LadderEntry, available_ladders
from .runtime import bitstream, zoo
from .runtime.bitstream import Header
from .runtime.decoder import float_state
from .runtime.integer_prior import ONE
from .runtime.safetensors import read_safetensors
from .weights import BadWeightsError, atomic_save, weights_digest

# Rebuilt from the parameters after rounding them to float16 (``update(force=True)``).
ENTROPY_TABLES = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table")
FIRST_FREE_MODEL_ID = 16  # ids below are the project's own ladders'


class CheckpointError(BadWeightsError):
    """A checkpoint or request ``clic import`` cannot take (one line, naming the file)."""


def architectures() -> dict[str, type]:
    """The CompressAI zoo classes by name, for those the integer decoder supports."""
    from compressai.zoo.image import model_architectures

    return {name: cls for name, cls in model_architectures.items() if name in zoo.KINDS}


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict: ``weights_only`` loading, ``state_dict`` unwrapped, keys of
    DataParallel (``module.``) and of older CompressAI releases renamed as CompressAI does."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # noqa: BLE001  weights_only refusals are pickle's UnpicklingError, damage others
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{path}: cannot be read as plain tensors ({reason}); clic never unpickles code: "
                              "save the model's state_dict() alone") from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{path}: not a state dict (a dict of tensors, or a dict holding 'state_dict')")
    from compressai.models.utils import remap_old_keys
    from compressai.zoo.pretrained import load_pretrained

    # CompressAI's own key migrations: DataParallel's module., older entropy-bottleneck names.
    return dict(remap_old_keys("entropy_bottleneck", load_pretrained(raw)))


def network_shape(architecture: str, state: dict[str, torch.Tensor]) -> dict[str, int]:
    """The constructor's arguments for ``state``, as CompressAI's ``from_state_dict`` reads them."""
    if architecture.startswith("cheng2020"):
        return {"N": int(state["g_a.0.conv1.weight"].shape[0])}
    return {"N": int(state["g_a.0.weight"].shape[0]), "M": int(state["g_a.6.weight"].shape[0])}


def build_from(architecture: str, state: dict[str, torch.Tensor], source: Path) -> torch.nn.Module:
    """The CompressAI network of ``architecture`` holding ``state``'s parameters, entropy tables
    rebuilt; a missing, unexpected or misshapen tensor is an error naming it."""
    try:
        shape = network_shape(architecture, state)
    except KeyError as exc:
        raise CheckpointError(f"{source}: no {exc.args[0]}; not a {architecture} checkpoint") from None
    net = architectures()[architecture](**shape)
    N, M = shape["N"], shape.get("M", shape["N"])
    expected = {k: v for k, v in net.state_dict().items() if not k.endswith(ENTROPY_TABLES)}
    given = {k: v for k, v in state.items() if not k.endswith(ENTROPY_TABLES)}
    for name in sorted(expected):
        if name not in given:
            raise CheckpointError(f"{source}: layer {name} missing (not a {architecture} checkpoint?)")
        if tuple(given[name].shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{source}: layer {name} has shape {tuple(given[name].shape)}, "
                               f"{architecture} with N={N}, M={M} needs {tuple(expected[name].shape)}")
    unexpected = sorted(set(given) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source}: layer {unexpected[0]} is not part of {architecture}")
    net.load_state_dict({**net.state_dict(), **{k: v.to(torch.float16).float() for k, v in given.items()}})
    net.update(force=True)  # the CDF tables of these (float16-rounded) parameters
    return net.eval()


def import_checkpoints(architecture: str, checkpoints: list[Path], name: str, metric: str = "mse",
                       model_id: int | None = None) -> tuple[Path, Path]:
    """Write ``NAME.safetensors`` and ``NAME.toml`` into the weights and ladder folders in use;
    return their paths."""
    if architecture not in architectures():
        raise CheckpointError(f"architecture {architecture!r}: not a CompressAI zoo architecture this decoder "
                              f"computes in integers; supported: {', '.join(sorted(architectures()))}")
    if not checkpoints:
        raise CheckpointError("give one --checkpoint per rung, lowest rate first")
    taken = {lad.model_id: lad.name for lad in available_ladders().values() if lad.name != name}
    model_id = model_id if model_id is not None else max([FIRST_FREE_MODEL_ID - 1, *taken]) + 1
    if model_id in taken or not 0 < model_id < 256:
        raise CheckpointError(f"model id {model_id} is taken by ladder {taken.get(model_id)!r} or out of 1..255")
    tensors, shape = {}, None
    for rung, path in enumerate(checkpoints):
        state = read_checkpoint(path)
        net = build_from(architecture, state, path)
        if shape not in (None, network_shape(architecture, state)):
            raise CheckpointError(f"{path}: {network_shape(architecture, state)}, unlike the first checkpoint's {shape}")
        shape = network_shape(architecture, state)
        for key, value in net.state_dict().items():
            value = value.to(torch.float16) if value.is_floating_point() and not key.endswith(ENTROPY_TABLES) else value
            tensors[zoo.rung_prefix(rung) + key] = value.contiguous()
    weights = ladders.WEIGHTS_DIR / f"{name}.safetensors"
    atomic_save(tensors, weights, {"note": f"imported {architecture} from {', '.join(p.name for p in checkpoints)}"})
    ladder = ladders.LADDER_DIR / f"{name}.toml"
    points = "".join(f"\n[[points]]\nrate = {rung}\n" for rung in range(len(checkpoints)))
    write_text(ladder, (
        f"# CompressAI {architecture}, one checkpoint per rung (clic import): "
        f"{', '.join(p.name for p in checkpoints)}\n"
        f'name = "{name}"\nmodel_id = {model_id}\narchitecture = "{zoo.PREFIX}{architecture}"\n'
        f'metric = "{metric}"\nweights = "{weights.name}"\nlambdas = []\n\n[arch]\n'
        + "".join(f"{k} = {v}\n" for k, v in shape.items()) + points
    ))
    return weights, ladder


class ImportedCodec:
    """One rung of an imported ladder behind the pipeline's ``Codec`` interface."""

    family = "learned"

    def __init__(self, entry: LadderEntry):
        self.entry, self.name, self.rate_label = entry, entry.name, f"rung {int(entry.rate)}"
        self._parts = None

    @property
    def fingerprint(self) -> str:
        digest = weights_digest(self.entry.ladder.weights_path())
        return f"lic v{bitstream.VERSION} {self.entry.ladder.architecture} rung {int(self.entry.rate)} weights {digest}"

    def parts(self) -> tuple[torch.nn.Module, zoo.Rung]:
        """(the CompressAI network for analysis, the runtime's rung for the probability path)."""
        if self._parts is None:
            lad = self.entry.ladder
            state = zoo.rung_state(float_state(read_safetensors(lad.weights_path())), int(self.entry.rate))
            architecture = lad.architecture.removeprefix(zoo.PREFIX)
            net = architectures()[architecture](**dict(lad.arch))
            net.load_state_dict(state, strict=False)  # entropy tables resized by CompressAI's loader
            net.update(force=True)
            self._parts = (net.eval(), zoo.Rung(zoo.KINDS[architecture], state))
        return self._parts

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> bytes:
        from .codec import pad_to_multiple, to_tensor

        net, rung = self.parts()
        height, width = image.shape[:2]
        bitstream.check_size(height, width)
        y = net.g_a(pad_to_multiple(to_tensor(image))).double()
        if rung.kind.prior == "factorized":
            streams = [net.entropy_bottleneck.compress(y.float())[0], b"", b""]
        else:
            z = net.h_a(torch.abs(y).float() if rung.kind.hyper_on_abs else y.float())
            z_stream = net.entropy_bottleneck.compress(z)[0]
            side = rung.side(rung.bottleneck_hat(z_stream, tuple(z.shape[1:])))
            symbols, indexes = [], []
            if rung.kind.prior == "context":
                def code_one(h: int, w: int, index: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
                    q = torch.round(y[0, :, h, w] - means.double() / ONE).int()
                    symbols.extend(q.tolist()), indexes.extend(index.tolist())
                    return q

                rung.autoregressive(side, code_one)
            else:
                index, means = rung.parameters(side)
                symbols, indexes = torch.round(y - means.double() / ONE).int().flatten().tolist(), index.flatten().tolist()
            streams = [_rans_encode(symbols, indexes, rung.tables), b"", z_stream]
        return bitstream.pack(Header(self.entry.ladder.model_id, self.entry.rate, height, width), streams)

    def decode(self, data: bytes) -> np.ndarray:
        from .codec import decode_stream

        return decode_stream(data)
