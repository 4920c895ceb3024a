"""models.laplacian: the conditional Laplacian entropy model (ladder flag ``laplacian = true``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from compressai.entropy_models import GaussianConditional

from eval.images import load_rgb8
from models.laplacian import LaplacianConditional
from models.ladder import load_ladder
from models.weights import build, export, load_into, load_state
from tiny_ladder import write_ladder

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"


def test_likelihood_is_the_laplacian_mass_of_each_bin():
    model = LaplacianConditional(None)
    values = torch.tensor([-7.0, -2.0, -0.3, 0.0, 0.4, 1.0, 3.0, 12.0])
    scales = torch.tensor([0.5, 1.0, 2.0, 0.2, 3.0, 1.5, 0.8, 4.0])
    means = torch.tensor([0.1, -0.5, 0.0, 0.0, 0.2, 0.3, -1.0, 2.0])
    got = model._likelihood(values, scales, means).double().numpy()
    v, s, m = values.double().numpy(), scales.double().numpy(), means.double().numpy()
    want = scipy.stats.laplace.cdf(v + 0.5, m, s) - scipy.stats.laplace.cdf(v - 0.5, m, s)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    # Heavier tails than the Gaussian of the same scale: 6 scales out costs less.
    gauss = GaussianConditional(None)._likelihood(torch.tensor([6.0]), torch.tensor([1.0]))
    assert model._likelihood(torch.tensor([6.0]), torch.tensor([1.0])) > 100 * gauss


def test_quantile_in_closed_form_is_scipys():
    for q in (1e-12, 5e-10, 0.1, 0.5, 0.7, 1 - 1e-9):
        # within an ulp or two (libm's log against numpy's); the tables below use scipy's
        assert LaplacianConditional._standardized_quantile(q) == pytest.approx(scipy.stats.laplace.ppf(q), rel=1e-15)


def test_coding_tables_span_the_laplacian_tail():
    model = LaplacianConditional(None)
    model.update_scale_table(torch.tensor([0.11, 1.0, 4.0]))
    reach = -scipy.stats.laplace.ppf(model.tail_mass / 2)  # about 20.03 scales
    assert [-int(o) for o in model._offset] == [math.ceil(s * reach) for s in (0.11, 1.0, 4.0)]
    # Each table is a monotone 16-bit CDF ending at 2**16.
    for cdf, length in zip(model._quantized_cdf, model._cdf_length):
        table = cdf[:length]
        assert table[0] == 0 and table[-1] == 2**16 and bool((table[1:] > table[:-1]).all())


@pytest.fixture
def nets(ladder_dir, tmp_path):
    """A tiny network with a Gaussian entropy model and the same weights with a Laplacian one."""
    write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.004, 0.016], N=16, M=24)
    write_ladder(ladder_dir, "tinyl", 254, lambdas=[0.001, 0.004, 0.016], N=16, M=24, flags=("laplacian",))
    torch.manual_seed(0)
    export(build(load_ladder("tiny")), load_ladder("tiny"), tmp_path / "w.safetensors")
    loaded = []
    for name in ("tiny", "tinyl"):
        net = build(load_ladder(name))
        assert load_into(net, load_state(tmp_path / "w.safetensors"), tmp_path) == []  # no new tensors
        net.update(force=True)  # coding tables of its own distribution (export does this)
        loaded.append(net.ready_for_coding())
    return loaded


def test_same_bins_other_bytes_and_the_bytes_match_the_model(nets):
    gaussian, laplacian = nets
    image = load_rgb8(KODAK / "kodim07.png")[64:192, 128:384]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
    with torch.no_grad():
        coded = {}
        for name, net in (("gaussian", gaussian), ("laplacian", laplacian)):
            out = net.compress(x, 2.0)
            coded[name] = out["strings"], net.decompress(out["strings"], out["shape"], 2.0)
        # The quantisation does not depend on the distribution: one decoded image ...
        assert torch.equal(coded["gaussian"][1], coded["laplacian"][1])
        # ... coded with different probabilities.
        assert coded["gaussian"][0][:2] != coded["laplacian"][0][:2]
        # The Laplacian's real bytes for y are what its likelihoods predict (tables = model).
        likelihoods = laplacian(x, torch.tensor([2.0]))["likelihoods"]["y"]
    predicted = float(-torch.log2(likelihoods).sum()) / 8
    real = sum(len(s) for strings in coded["laplacian"][0][:2] for s in strings)
    assert abs(real - predicted) < 0.03 * predicted + 16, (real, predicted)
