"""CompressAI checkpoints as a ladder: `clic import`, then `clic submission` with the imported
ladder, decoded by the integer runtime.  Small zoo networks (N=16, M=24) stand in for trained
ones: no weights are downloaded."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from compressai.zoo.image import model_architectures
from PIL import Image
from typer.testing import CliRunner

from models.codec import decode_stream, pad_to_multiple, to_tensor
from models.ladder import load_ladder
from models.runtime import bitstream
from models.weights import is_encoder_only
from pipeline.cli import app
from pipeline.codecs import get_codec
from tiny_ladder import installed


def checkpoint(architecture: str, seed: int, N: int = 16, M: int = 24) -> torch.nn.Module:
    torch.manual_seed(seed)
    shape = {"N": N} if architecture.startswith("cheng2020") else {"N": N, "M": M}
    net = model_architectures[architecture](**shape)
    last = [m for m in net.g_s.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    with torch.no_grad():  # an untrained output clamps to black; centre and spread it, so pixels can disagree
        last.weight.mul_(20)
        last.bias.fill_(0.5)
    net.update(force=True)
    return net.eval()


@pytest.fixture
def folders(tmp_path):
    ladders, weights = tmp_path / "ladders", tmp_path / "weights"
    ladders.mkdir(), weights.mkdir()
    with installed(ladders, weights):
        get_codec.cache_clear()
        yield ladders, weights
    get_codec.cache_clear()


def run(*args: str):
    return CliRunner().invoke(app, [*args])


@pytest.mark.parametrize("architecture", ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
                                          "cheng2020-anchor", "cheng2020-attn"])
def test_imported_rungs_code_what_compressai_codes(architecture, folders, images, tmp_path):
    """Each rung's file decodes (in integers, without CompressAI) to the latent CompressAI's own
    float path decodes, but for rare scale-table boundary cases, and to its pixels."""
    nets = [checkpoint(architecture, seed) for seed in (1, 2)]
    paths = []
    for i, net in enumerate(nets):  # the two forms CompressAI's training example writes; DataParallel's and
        state = net.state_dict()    # older releases' key names (module., entropy_bottleneck._matrix0)
        if i:
            old = {"matrices": "_matrix", "biases": "_bias", "factors": "_factor"}
            state = {"module." + re.sub(r"\.(matrices|biases|factors)\.(\d)$",
                                        lambda m: f".{old[m.group(1)]}{m.group(2)}", k): v for k, v in state.items()}
            assert "module.entropy_bottleneck._matrix0" in state and "module.entropy_bottleneck._bias0" in state
        torch.save({"epoch": 3, "state_dict": state} if i else state, tmp_path / f"q{i}.pth")
        paths.append(tmp_path / f"q{i}.pth")
    result = run("import", "--architecture", architecture, *[a for p in paths for a in ("--checkpoint", str(p))],
                 "--name", "mine")
    assert result.exit_code == 0, result.output
    ladder = load_ladder("mine")
    assert ladder.architecture == f"compressai:{architecture}" and ladder.model_id == 16
    assert [e.name for e in ladder.entries] == ["learned-mine-q1", "learned-mine-q2"]
    image = np.array(Image.open(images / "kodim01.png").convert("RGB"))
    x = pad_to_multiple(to_tensor(image))  # 96 × 128 -> 128 × 128, as the encoder pads
    for rung, net in enumerate(nets):
        codec = get_codec(f"learned-mine-q{rung + 1}")
        data = codec.encode(image)
        header, streams = bitstream.parse(data)
        assert (header.model_id, header.rate, header.height, header.width) == (16, rung, 96, 128)
        ours = decode_stream(data)
        with torch.no_grad():
            coded = net.compress(x)
            reference = net.decompress(**coded)["x_hat"].clamp(0, 1)
        theirs = (reference[0, :, :96].permute(1, 2, 0) * 255).round().byte().numpy()
        # float16 storage of the weights and fixed-point means: within a fraction of a level of CompressAI's pixels,
        # on an output that varies (an untrained network's is not flat)
        assert np.abs(ours.astype(int) - theirs).mean() < 0.25 and theirs.std() > 50, rung
        compressai_bytes = sum(len(s[0]) for s in coded["strings"])
        assert abs(sum(map(len, streams)) - compressai_bytes) <= 0.05 * compressai_bytes + 8


def test_imported_ladder_goes_from_checkpoints_to_a_verified_submission(folders, images, tmp_path):
    """Two commands: `clic import`, `clic submission`; the package ships only decoder tensors."""
    for seed in (1, 2, 3):
        torch.save(checkpoint("mbt2018-mean", seed).state_dict(), tmp_path / f"r{seed}.pth")
    args = ["import", "--architecture", "mbt2018-mean", "--name", "mbt",
            *[a for s in (1, 2, 3) for a in ("--checkpoint", str(tmp_path / f"r{s}.pth"))]]
    assert run(*args).exit_code == 0
    out = tmp_path / "out"
    result = run("submission", "--images", str(images), "--ladder", "mbt", "--bpp", "24", "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "submission" / "manifest.json").read_text())
    chosen = pd.DataFrame(manifest["images"])
    assert chosen["candidate"].str.startswith("learned-mbt-").all(), chosen
    assert all("latent" in row for row in manifest["images"] if row["candidate"].startswith("learned-"))
    shipped = (out / "submission" / "decoder" / "weights" / "mbt.safetensors")
    from models.runtime.safetensors import read_safetensors

    names = list(read_safetensors(shipped))
    assert names and not any(is_encoder_only(n) for n in names) and any(n.startswith("rung2.g_s.") for n in names)


def test_import_refuses_what_it_cannot_take_in_one_line(folders, tmp_path):
    net = checkpoint("bmshj2018-hyperprior", 1)
    state = net.state_dict()
    torch.save({k: v for k, v in state.items() if k != "h_s.2.weight"}, tmp_path / "missing.pth")
    torch.save({**state, "h_s.2.weight": torch.zeros(3, 3, 5, 5)}, tmp_path / "shape.pth")
    torch.save({"model": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")  # needs full unpickling
    torch.save(state, tmp_path / "good.pth")
    cases = [
        (["--architecture", "bmshj2018-hyperprior", "--checkpoint", str(tmp_path / "missing.pth")],
         "layer h_s.2.weight missing"),
        (["--architecture", "bmshj2018-hyperprior", "--checkpoint", str(tmp_path / "shape.pth")],
         "layer h_s.2.weight has shape (3, 3, 5, 5)"),
        (["--architecture", "bmshj2018-hyperprior", "--checkpoint", str(tmp_path / "pickled.pth")],
         "cannot be read as plain tensors"),
        (["--architecture", "bmshj2018_factorized_relu", "--checkpoint", str(tmp_path / "good.pth")],
         "not a CompressAI zoo architecture this decoder computes in integers"),
        (["--architecture", "bmshj2018-hyperprior", "--checkpoint", str(tmp_path / "nothing.pth")],
         "no such checkpoint"),
    ]
    for args, phrase in cases:
        result = run("import", *args, "--name", "bad")
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1 and phrase in result.stderr, result.stderr
    assert not list(folders[0].iterdir()) and not list(folders[1].iterdir())  # nothing written
