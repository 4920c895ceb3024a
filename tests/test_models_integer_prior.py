"""The integer probability path (``models.runtime.integer_prior``): exact layers, exact gains, and the
same latents on every CPU instruction set and thread count, with the committed ladders."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import models.ladder
from corpus import KODAK
from eval.images import load_rgb8
from models import codec
from models.runtime.integer_prior import (
    ACTIVATION_LIMIT,
    FRACTION_BITS,
    IntegerLayer,
    NotIntegerCodableError,
    exact_gain,
    to_fixed,
)
from pipeline.verify import PSNR_TOLERANCE_DB
from tiny_ladder import installed

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("psnr", "msssim", "transparent")


def cpu_has_avx512() -> bool:
    """Whether ATen's AVX-512 kernels can run here (forcing them elsewhere is an illegal instruction)."""
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


@pytest.mark.parametrize("transposed", [False, True])
def test_an_integer_layer_is_the_float_layer_to_within_its_rounding(transposed):
    torch.manual_seed(0)
    layer = (nn.ConvTranspose2d(12, 8, 5, stride=2, padding=2, output_padding=1) if transposed
             else nn.Conv2d(12, 8, 3, padding=1)).double()
    x = torch.randn(1, 12, 9, 7, dtype=torch.float64) * 3
    a = to_fixed(x)
    got = IntegerLayer(layer.weight, layer.bias, transposed)(a)
    assert got.dtype == torch.int64
    expected = layer(a.double() / 2**FRACTION_BITS) * 2**FRACTION_BITS
    # Weights rounded to 16 bits per output channel: the error stays a few activation steps.
    assert (got - expected).abs().max() < 8, float((got - expected).abs().max())


def test_an_integer_layer_gives_the_same_integers_in_any_summation_order():
    torch.manual_seed(1)
    conv = nn.Conv2d(64, 32, 5, padding=2)
    layer = IntegerLayer(conv.weight, conv.bias, False)
    a = torch.randint(-ACTIVATION_LIMIT, ACTIVATION_LIMIT, (1, 64, 12, 12))
    reversed_channels = IntegerLayer.__new__(IntegerLayer)
    reversed_channels.__dict__ = dict(layer.__dict__, weight=layer.weight.flip(1))
    assert torch.equal(layer(a), reversed_channels(a.flip(1)))  # another order, the same integers


def test_a_layer_whose_accumulator_could_reach_2_to_the_53_is_refused():
    wide = nn.Conv2d(1 << 19, 1, 1)  # 2**19 inputs × weights 2**14 × activations 2**20 = 2**53
    with torch.no_grad():
        wide.weight.fill_(1.0)
    with pytest.raises(NotIntegerCodableError, match="2\\*\\*53"):
        IntegerLayer(wide.weight, wide.bias, False, name="wide")


def test_exact_gains_are_the_rows_at_integer_rates_and_geometric_between():
    torch.manual_seed(2)
    table = torch.rand(3, 10) + 0.5
    assert torch.equal(exact_gain(table, 1.0), table[1].double())
    assert torch.equal(exact_gain(table, 9.0), table[2].double())  # clamped to the top row
    t = 77 / 256
    between = exact_gain(table, 1 + t)
    geometric = table[1].double() ** (1 - t) * table[2].double() ** t
    assert torch.allclose(between, geometric, rtol=1e-14, atol=0)


DECODE_IN_FRESH_PROCESS = r"""
import json, sys
import numpy as np, torch
from models import codec
files, out = json.loads(sys.argv[1]), sys.argv[2]
result = {}
for threads in (1, 2, 4):
    torch.set_num_threads(threads)
    for name, path in files.items():
        image, digest = codec.decode_with_digest(open(path, "rb").read())
        np.save(f"{out}/{name}-{threads}.npy", image)
        result[f"{name}-{threads}"] = digest
json.dump(result, open(f"{out}/digests.json", "w"))
"""


@pytest.mark.skipif(not all((ROOT / "models" / "weights" / f"{n}.safetensors").is_file() for n in SHIPPED),
                    reason="committed weights missing")
def test_committed_ladders_decode_the_same_latents_on_every_instruction_set_and_thread_count(tmp_path):
    """Kodak crops coded by psnr, msssim and transparent, decoded in fresh processes under every
    ATEN_CPU_CAPABILITY × DNNL_MAX_CPU_ISA on 1, 2 and 4 threads: identical latents, pixels
    within one level and PSNR within the verification tolerance.  (ATen's avx512 kernels only
    where the CPU has AVX-512.)"""
    files, reference = {}, {}
    with installed(ROOT / "models" / "ladders", ROOT / "models" / "weights"):
        for ladder in SHIPPED:
            entry = models.ladder.load_ladder(ladder).entries[2]
            image = load_rgb8(KODAK / "kodim05.png")[64:192, 128:320]
            path = tmp_path / f"{ladder}.lic"
            path.write_bytes(codec.encode_image(entry, image))
            files[ladder] = str(path)
            reference[ladder] = (image, *codec.decode_with_digest(path.read_bytes()))
    capabilities = ("default", "avx2", "avx512") if cpu_has_avx512() else ("default", "avx2")
    for aten, dnnl in itertools.product(capabilities, ("SSE41", "AVX2", "default")):
        out = tmp_path / f"{aten}-{dnnl}"
        out.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
        env |= {"ATEN_CPU_CAPABILITY": aten} | ({} if dnnl == "default" else {"DNNL_MAX_CPU_ISA": dnnl})
        done = subprocess.run([sys.executable, "-c", DECODE_IN_FRESH_PROCESS, json.dumps(files), str(out)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        digests = json.loads((out / "digests.json").read_text())
        for ladder, (original, pixels, digest) in reference.items():
            for threads in (1, 2, 4):
                where = (aten, dnnl, threads, ladder)
                assert digests[f"{ladder}-{threads}"] == digest, where
                decoded = np.load(out / f"{ladder}-{threads}.npy")
                assert np.abs(decoded.astype(int) - pixels).max() <= 1, where
                sse = lambda x: float(((x.astype(np.int64) - original) ** 2).sum())  # noqa: E731
                assert abs(10 * np.log10(sse(decoded) / sse(pixels))) <= PSNR_TOLERANCE_DB, where


def test_the_pure_python_range_decoder_reads_compressais_streams_bypass_values_included():
    from compressai.ans import RansDecoder, RansEncoder

    from models.runtime.rans import decode_with_indexes

    rng = np.random.default_rng(3)
    cdfs = [[0, 20000, 65000, 65536], [0, 1, 30000, 65535, 65536, 0]]  # the second padded, as CompressAI's are
    lengths, offsets = [4, 5], [-1, -2]
    indexes = rng.integers(0, 2, 5000).tolist()
    symbols = [int(v) for v in rng.integers(-3, 4, 5000)]
    symbols[:4] = [1000, -7000, 2, 123456]  # far outside the tables: bypass-coded
    data = RansEncoder().encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
    theirs = RansDecoder().decode_with_indexes(data, indexes, cdfs, lengths, offsets)
    assert decode_with_indexes(data, indexes, cdfs, lengths, offsets) == theirs == symbols
    with pytest.raises(ValueError, match="ends early|whole 32-bit words"):
        decode_with_indexes(data[:-8], indexes, cdfs, lengths, offsets)
