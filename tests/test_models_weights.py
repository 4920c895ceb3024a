"""models.weights: float16 safetensors export/load, bad files, and a no-pickle scan of the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from eval.images import load_rgb8
from models.codec import decode_stream, encode_image
from models.ladder import LadderFileError, load_ladder
from models.train import bits_per_pixel
from models.weights import (
    CHECKPOINT_PREFIX, SCALE_SUFFIX, BadWeightsError, atomic_save, build, export, is_constant_buffer, load_into,
    load_network, load_state, weights_note, write_decoder_weights,
)
from tiny_ladder import write_ladder

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT / "data" / "kodak"
COMMITTED = ROOT / "models" / "weights"
WEIGHTS_BUDGET = 15_000_000  # bytes: a device call carries 64 MiB, Kodak and the train pack take 45 MB of it


@pytest.fixture
def ladders(ladder_dir):
    """Two tiny ladders of different sizes in a temp ladder folder."""
    write_ladder(ladder_dir, "tiny", 250, N=16, M=24)
    write_ladder(ladder_dir, "small", 251, N=8, M=12)
    write_ladder(ladder_dir, "tiny8", 252, N=16, M=24, precision="int8")
    return ladder_dir


def trained_like(ladder, seed: int = 0) -> torch.nn.Module:
    """A network whose parameters are off their initial values (as after training)."""
    torch.manual_seed(seed)
    net = build(ladder)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + 0.1 * torch.randn_like(p)).add_(1e-3 * torch.randn_like(p))
    return net


def test_export_then_load_gives_the_exported_float16_values(ladders, tmp_path):
    ladder = load_ladder("tiny")
    net = trained_like(ladder)
    original = {k: v.clone() for k, v in net.named_parameters()}
    path = tmp_path / "w" / "tiny.safetensors"
    export(net, ladder, path, note="unit test")
    stored = load_file(str(path))
    assert not list(tmp_path.joinpath("w").glob(".*.tmp")), "temporary file left behind"
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a decoder running as another user

    loaded = load_network(ladder, tmp_path / "w")
    assert not loaded.training
    state = loaded.state_dict()
    # Everything is stored but the constant context mask, which the network rebuilds itself.
    constant = {k for k in state if is_constant_buffer(k)}
    assert constant == {"latent_codec.y.context_prediction.mask"}
    assert set(state) == set(stored) | constant and not constant & set(stored)
    assert torch.equal(loaded.get_buffer(constant.pop()), build(ladder).get_buffer("latent_codec.y.context_prediction.mask"))
    for key, value in stored.items():
        if key in original:  # parameters: float16 on disk, exactly those values in memory
            assert value.dtype == torch.float16, key
            assert torch.equal(state[key], value.float()), key
            assert torch.equal(value, original[key].half()), key
        else:  # buffers (float constants, masks, integer CDF tables): stored and loaded exactly
            assert torch.equal(state[key], value.to(state[key].dtype)), key
    # The entropy tables exist, so the loaded network can code.
    cdf = state["latent_codec.y.y.gaussian_conditional._quantized_cdf"]
    assert cdf.dtype == torch.int32 and cdf.numel() > 0
    assert load_network(ladder, tmp_path / "w") is loaded  # cached per process


def test_loaded_constants_keep_their_exact_values(ladders, tmp_path):
    """Only parameters become float16: the 1e-9 likelihood bound (0 in float16) must survive."""
    ladder = load_ladder("tiny")
    export(trained_like(ladder), ladder, tmp_path / "tiny.safetensors")
    stored = load_file(str(tmp_path / "tiny.safetensors"))
    bound = "latent_codec.y.y.gaussian_conditional.likelihood_lower_bound.bound"
    assert stored[bound].dtype == torch.float32 and stored[bound].item() == pytest.approx(1e-9)
    net = load_network(ladder, tmp_path)
    fresh = build(ladder)
    for name, buf in fresh.named_buffers():
        if name.endswith((".bound", ".pedestal")):
            assert torch.equal(net.get_buffer(name), buf), name
    # A latent far from its predicted mean still has a finite cost.
    image = load_rgb8(KODAK / "kodim13.png")[:64, :64]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = net(x * 40 - 20, torch.tensor([1.0]))  # far outside the training range
    assert torch.isfinite(bits_per_pixel(out["likelihoods"], 64 * 64)).all()


def test_int8_export_stores_codes_and_channel_scales_that_load_to_the_exported_values(ladders, tmp_path):
    ladder = load_ladder("tiny8")
    assert ladder.precision == "int8" and load_ladder("tiny").precision == "float16"
    net = trained_like(ladder)
    original = {k: v.detach().clone() for k, v in net.named_parameters()}
    folder = tmp_path / "w"
    export(net, ladder, folder / "tiny8.safetensors")
    export(trained_like(load_ladder("tiny")), load_ladder("tiny"), folder / "tiny.safetensors")
    stored = load_file(str(folder / "tiny8.safetensors"))
    codes = {k for k, v in stored.items() if v.dtype == torch.int8}
    assert "g_a.2.weight" in codes and "g_a.0.weight" not in codes and "y_gain" not in codes  # large weights only; gains stay float16
    assert {k + SCALE_SUFFIX for k in codes} == {k for k in stored if k.endswith(SCALE_SUFFIX)}
    loaded = load_network(ladder, folder).state_dict()
    for key in codes:
        scale = stored[key + SCALE_SUFFIX].reshape(-1, *[1] * (original[key].ndim - 1))
        assert torch.equal(loaded[key], stored[key].float() * scale)  # exactly what the tables were built from
        assert float((loaded[key] - original[key]).abs().div(scale).max()) <= 0.5 + 1e-4  # within half a step
        assert int(stored[key].abs().amax()) == 127
    saved = (folder / "tiny.safetensors").stat().st_size - (folder / "tiny8.safetensors").stat().st_size
    one_byte_each = sum(stored[k].numel() - 4 * stored[k + SCALE_SUFFIX].numel() for k in codes)
    assert abs(saved - one_byte_each) < 2048  # a byte per weight instead of two (headers differ a little)
    # It codes like any ladder: the decoder reproduces the encoder's bytes, also from a decoder-only copy.
    image = load_rgb8(KODAK / "kodim05.png")[:64, :96]
    data = encode_image(ladder.entries[1], image, folder)
    write_decoder_weights(folder / "tiny8.safetensors", tmp_path / "d" / "tiny8.safetensors")
    assert load_file(str(tmp_path / "d" / "tiny8.safetensors"))["g_s.1.weight"].dtype == torch.int8
    assert decode_stream(data, tmp_path / "d").tobytes() == decode_stream(data, folder).tobytes()


def test_an_int8_ladder_keeps_its_keep_float16_parameters_in_float16(ladder_dir, tmp_path):
    kept = ("g_a.2.weight", "g_s.1.weight")
    write_ladder(ladder_dir, "tiny8", 252, N=16, M=24, precision="int8")
    write_ladder(ladder_dir, "tiny8k", 253, N=16, M=24, precision="int8", keep_float16=kept)
    ladder = load_ladder("tiny8k")
    assert ladder.keep_float16 == kept
    net = trained_like(ladder)
    original = {k: v.detach().clone() for k, v in net.named_parameters()}
    export(net, ladder, tmp_path / "tiny8k.safetensors")
    export(trained_like(ladder), load_ladder("tiny8"), tmp_path / "tiny8.safetensors")
    stored = load_file(str(tmp_path / "tiny8k.safetensors"))
    assert {stored[k].dtype for k in kept} == {torch.float16} and not {k + SCALE_SUFFIX for k in kept} & set(stored)
    assert stored["g_a.5.weight"].dtype == torch.int8  # every other large weight as before
    loaded = load_network(ladder, tmp_path).state_dict()
    for key in kept:
        assert torch.equal(loaded[key], original[key].half().float())
    kept_bytes = (tmp_path / "tiny8k.safetensors").stat().st_size - (tmp_path / "tiny8.safetensors").stat().st_size
    one_more_byte_each = sum(original[k].numel() - 4 * original[k].shape[0] for k in kept)  # less the scales
    assert abs(kept_bytes - one_more_byte_each) < 512
    image = load_rgb8(KODAK / "kodim05.png")[:64, :96]
    data = encode_image(ladder.entries[1], image, tmp_path)
    assert decode_stream(data, tmp_path).shape == image.shape


def test_keep_float16_names_are_checked(ladder_dir, tmp_path):
    write_ladder(ladder_dir, "tiny8k", 253, N=16, M=24, precision="int8", keep_float16=("g_a.2.wieght",))
    out = tmp_path / "w.safetensors"
    with pytest.raises(LadderFileError, match="ladder tiny8k: keep_float16 names 'g_a.2.wieght', not a parameter"):
        export(build(load_ladder("tiny8k")), load_ladder("tiny8k"), out)
    assert not out.exists()
    path = write_ladder(ladder_dir, "tinyk", 254, N=16, M=24, keep_float16=("g_a.2.weight",))
    with pytest.raises(LadderFileError, match=f"{path}: keep_float16 applies to int8 weights only"):
        load_ladder("tinyk")
    path.write_text(path.read_text().replace("keep_float16 = ['g_a.2.weight']", 'precision = "int8"\nkeep_float16 = "g_a.2.weight"'))
    with pytest.raises(LadderFileError, match=f"{path}: keep_float16 must be a list of parameter names"):
        load_ladder("tinyk")


def test_int8_tensors_without_matching_scales_are_refused(ladders, tmp_path):
    codes = torch.ones(4, 3, dtype=torch.int8)
    for name, tensors in {
        "no scale": {"w": codes},
        "scale of another shape": {"w": codes, "w" + SCALE_SUFFIX: torch.ones(3)},
        "scale of nothing": {"w": codes.float(), "v" + SCALE_SUFFIX: torch.ones(4)},
    }.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path))
        with pytest.raises(BadWeightsError, match=f"^{path}: .*(scale|int8)"):
            load_state(path)


def test_a_ladder_file_with_an_unknown_precision_is_refused(ladder_dir):
    path = write_ladder(ladder_dir, "tiny4", 253, precision="int4")
    with pytest.raises(LadderFileError, match=f"{path}: precision must be one of float16, int8, got 'int4'"):
        load_ladder("tiny4")


def test_garbage_and_truncated_files_raise_bad_weights(ladders, tmp_path):
    ladder = load_ladder("tiny")
    export(trained_like(ladder), ladder, tmp_path / "good.safetensors")
    good = (tmp_path / "good.safetensors").read_bytes()
    cases = {
        "empty": b"",
        "garbage": np.random.default_rng(0).bytes(5000),
        "truncated": good[: len(good) // 2],
        "header only": good[:8],
        "pickle-like": b"\x80\x04\x95" + b"\x00" * 64,
    }
    for name, content in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "tiny.safetensors").write_bytes(content)
        with pytest.raises(BadWeightsError, match="not a readable safetensors file"):
            load_network(ladder, folder)
    with pytest.raises(BadWeightsError, match="not found"):
        load_network(ladder, tmp_path / "missing")
    with pytest.raises(BadWeightsError, match="not found"):
        load_state(tmp_path / "missing.safetensors")


def test_weights_of_another_size_raise_bad_weights(ladders, tmp_path):
    small, tiny = load_ladder("small"), load_ladder("tiny")
    export(trained_like(small), small, tmp_path / "tiny.safetensors")  # N=8 weights under tiny's name
    with pytest.raises(BadWeightsError, match="does not fit the ladder's network") as info:
        load_network(tiny, tmp_path)
    assert "\n" not in str(info.value)
    # Missing keys (a partial state) are refused too.
    export(trained_like(tiny), tiny, tmp_path / "tiny.safetensors")
    state = load_file(str(tmp_path / "tiny.safetensors"))
    state.pop("g_a.0.weight")
    partial = tmp_path / "partial"
    partial.mkdir()
    save_file(state, str(partial / "tiny.safetensors"))
    with pytest.raises(BadWeightsError, match="does not fit the ladder's network .missing g_a.0.weight."):
        load_network(tiny, partial)


# -- no pickle anywhere ----------------------------------------------------------

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
# Calls that unpickle or execute what they load, whatever their arguments: by the end of
# their dotted name (eval and exec only as the builtins).
UNSAFE_CALLS = {
    ("joblib", "load"): "unpickles", ("read_pickle",): "unpickles", ("to_pickle",): "writes a pickle",
    ("jit", "load"): "runs TorchScript", ("unsafe_load",): "builds arbitrary objects",
}
BUILTIN_EXEC = {"eval", "exec", "builtins.eval", "builtins.exec"}


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _unsafe_calls(tree: ast.AST) -> list[str]:
    """Pickle-family imports, torch.load without weights_only=True, np.load with allow_pickle,
    yaml.load without a safe loader, joblib.load / read_pickle / torch.jit.load, eval / exec."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in PICKLE_MODULES:
                found.append(f"from {module} import ...")
            if module == "torch" and any(a.name == "load" for a in node.names):
                found.append("from torch import load")
            if module == "joblib" and any(a.name == "load" for a in node.names):
                found.append("from joblib import load")
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if func.split(".")[-2:] == ["torch", "load"] and not _is_true(keywords.get("weights_only")):
                found.append(f"line {node.lineno}: {func}(...) without weights_only=True")
            if func.split(".")[-1] == "load" and func.split(".")[0] in ("np", "numpy") and "allow_pickle" in keywords:
                if not (isinstance(keywords["allow_pickle"], ast.Constant) and keywords["allow_pickle"].value is False):
                    found.append(f"line {node.lineno}: {func}(..., allow_pickle=...)")
            if func.split(".")[-2:] == ["yaml", "load"] and "Safe" not in ast.unparse(keywords.get("Loader", ast.Constant(""))):
                found.append(f"line {node.lineno}: {func}(...) without a safe Loader")
            for suffix, why in UNSAFE_CALLS.items():
                if tuple(func.split(".")[-len(suffix):]) == suffix:
                    found.append(f"line {node.lineno}: {func}(...) {why}")
            if func in BUILTIN_EXEC:
                found.append(f"line {node.lineno}: {func}(...) executes text")
    return found


def test_committed_weights_fit_the_budget_and_each_loads_into_its_ladders_network():
    """Each ladder's weights, and a run's resume point (``NAME-resume``), fit the
    network its ladder file describes today, all together within the budget."""
    files = sorted(COMMITTED.glob("*.safetensors"))
    assert {"psnr.safetensors", "msssim.safetensors"} <= {f.name for f in files}
    assert sum(f.stat().st_size for f in files) <= WEIGHTS_BUDGET
    for path in files:
        ladder = load_ladder(path.name.removesuffix(".safetensors").removesuffix("-resume"))
        assert load_into(build(ladder), load_state(path), path) == []


def test_scan_finds_the_patterns_it_looks_for():
    bad = ("import pickle\nfrom pickle import loads\nimport torch\ntorch.load('x')\nnp.load('y', allow_pickle=True)\n"
           "import marshal\njoblib.load('m')\npd.read_pickle('p')\ntorch.jit.load('s')\nyaml.load(t)\n"
           "eval(text)\nexec(code)\nfrom joblib import load\n")
    good = ("import torch\ntorch.load('x', weights_only=True)\nnp.load('y')\nyaml.load(t, Loader=yaml.SafeLoader)\n"
            "net.eval()\njson.load(f)\nsafetensors.torch.load_file('w')\n")
    assert len(_unsafe_calls(ast.parse(bad))) == 12
    assert _unsafe_calls(ast.parse(good)) == []


def test_tree_has_no_pickle_and_no_unsafe_torch_load():
    """Every Python file of the project (packages, benchmarks, tests) loads data, never code."""
    files = [p for pkg in ("models", "pipeline", "eval", "allocate", "bench", "tests") for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 10
    problems = []
    for path in files:
        for finding in _unsafe_calls(ast.parse(path.read_text(), filename=str(path))):
            problems.append(f"{path.relative_to(ROOT)}: {finding}")
    assert problems == []


def test_export_command_stores_weights_again_at_the_ladder_files_precision(ladders, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    half = tmp_path / "half.safetensors"
    export(trained_like(load_ladder("tiny")), load_ladder("tiny"), half, note="step 9")
    write_ladder(ladders, "tiny", 250, N=16, M=24, precision="int8")  # the ladder switches to int8
    out = tmp_path / "int8.safetensors"
    done = CliRunner().invoke(app, ["export", "--ladder", "tiny", "--weights", str(half), "--out", str(out)])
    assert done.exit_code == 0, done.output
    stored, before = load_file(str(out)), load_state(half)
    assert weights_note(out) == "step 9 (stored again in int8)" and stored["g_a.2.weight"].dtype == torch.int8
    codes = [k for k, v in stored.items() if v.dtype == torch.int8]
    one_byte_each = sum(stored[k].numel() - 4 * stored[k + SCALE_SUFFIX].numel() for k in codes)
    assert abs(half.stat().st_size - out.stat().st_size - one_byte_each) < 2048
    scale = stored["g_a.2.weight" + SCALE_SUFFIX].reshape(-1, 1, 1, 1)
    assert float((load_state(out)["g_a.2.weight"] - before["g_a.2.weight"]).abs().div(scale).max()) <= 0.5 + 1e-3
    checkpoint = tmp_path / "checkpoint.safetensors"  # a training run's: float32 network and Adam state
    net = trained_like(load_ladder("tiny"), seed=3)
    atomic_save({CHECKPOINT_PREFIX + k: v for k, v in net.state_dict().items()} | {"opt.0.exp_avg": torch.ones(3)},
                checkpoint, {"step": "1234"})
    done = CliRunner().invoke(app, ["export", "--ladder", "tiny", "--weights", str(checkpoint), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert weights_note(out) == "step 1234 (checkpoint) (stored again in int8)"
    scale = load_file(str(out))["g_a.2.weight" + SCALE_SUFFIX].reshape(-1, 1, 1, 1)
    assert float((load_state(out)["g_a.2.weight"] - net.g_a[2].weight.detach()).abs().div(scale).max()) <= 0.5 + 1e-3
    for other in ("small", "tiny8"):  # another architecture; the same one, but another ladder's weights
        refused = CliRunner().invoke(app, ["export", "--ladder", other, "--weights", str(half),
                                           "--out", str(tmp_path / "x.safetensors")])
        assert refused.exit_code == 2 and str(half) in refused.output and not (tmp_path / "x.safetensors").exists()
    assert "weights of ladder 'tiny', not 'tiny8'" in refused.output
