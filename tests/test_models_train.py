"""models.train: the loss goes down, checkpoints resume exactly, MS-SSIM needs big crops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import models.ladder
from eval.images import load_rgb8
from models.data import CropSampler
from models.train import MSSSIM_MIN_CROP, TrainConfig, Trainer, TrainingError, bits_per_pixel, distortion, train
from models.weights import BadWeightsError, export, load_network, weights_note
from tiny_ladder import write_ladder

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"


@pytest.fixture
def ladders(ladder_dir):
    write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.004, 0.016], rates=(0.0, 2.0))
    write_ladder(ladder_dir, "tinyms", 251, metric="msssim", lambdas=[3, 8, 24], rates=(0.0, 2.0))
    write_ladder(ladder_dir, "tinypf", 252, lambdas=[0.001, 0.004, 0.016], rates=(0.0, 2.0), flags=("postfilter",))
    yield ladder_dir
    torch.set_num_threads(1)


def config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(ladder="tiny", data=[KODAK], out=tmp_path / "run", steps=4, batch=2, crop=64, lr=1e-3,
                threads=1, checkpoint_s=1e9, log_every=2, resume=True, seed=3)
    return TrainConfig(**(base | kw))


def fixed_crop() -> torch.Tensor:
    image = load_rgb8(KODAK / "kodim23.png")[200:264, 300:364]
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).repeat(3, 1, 1, 1)


@torch.no_grad()
def eval_loss(trainer: Trainer, x: torch.Tensor) -> float:
    """Deterministic loss of x at every gain row (eval mode: rounding, not noise)."""
    net = trainer.net.eval()
    rows = torch.arange(len(trainer.lambdas)).float()
    out = net(x, rows, bf16=False)
    dist = distortion(trainer.ladder, x, out["x_hat"])
    bpp = bits_per_pixel(out["likelihoods"], x.shape[2] * x.shape[3])
    net.train()
    return float((trainer.lambdas * dist + bpp).mean())


def test_a_few_steps_on_one_crop_reduce_the_loss(ladders, tmp_path):
    trainer = Trainer(config(tmp_path, resume=False, bf16=False))
    x = fixed_crop()
    before = eval_loss(trainer, x)
    stats = [trainer.train_step(x) for _ in range(25)]
    after = eval_loss(trainer, x)
    assert trainer.step == 25
    assert all(math.isfinite(s["loss"]) and s["bpp"] > 0 for s in stats)
    assert after < 0.7 * before, (before, after)


def test_bf16_training_step_is_finite_and_keeps_float32_weights(ladders, tmp_path):
    trainer = Trainer(config(tmp_path, resume=False, bf16=True, channels_last=True))
    stats = trainer.train_step(fixed_crop())
    assert all(math.isfinite(v) for v in stats.values())
    assert all(p.dtype == torch.float32 for p in trainer.net.parameters())


def test_a_diverging_step_stops_training_and_leaves_the_weights_as_they_were(ladders, tmp_path):
    trainer = Trainer(config(tmp_path, resume=False, bf16=False))
    trainer.train_step(fixed_crop())  # (the first forward also zeroes the context convolution's masked taps)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    poisoned = fixed_crop()
    poisoned[0, 0, 0, 0] = float("inf")
    with pytest.raises(TrainingError, match=r"step 2: loss (nan|inf).*training diverged"):
        trainer.train_step(poisoned)
    assert trainer.step == 1
    after = trainer.net.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []


def test_diverged_entropy_bottleneck_quantiles_stop_training_before_any_update(ladders, tmp_path):
    trainer = Trainer(config(tmp_path, resume=False, bf16=False))
    trainer.train_step(fixed_crop())
    name = next(n for n, _ in trainer.net.named_parameters() if n.endswith(".quantiles"))
    with torch.no_grad():
        dict(trainer.net.named_parameters())[name][0, 0, 0] = float("nan")
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    with pytest.raises(TrainingError, match=r"step 2: loss [0-9.]+, gradient norm [0-9.]+, auxiliary loss nan"):
        trainer.train_step(fixed_crop())
    assert trainer.step == 1
    after = trainer.net.state_dict()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, equal_nan=True, msg=key)


def test_the_main_loss_leaves_the_quantile_gradients_to_the_auxiliary_loss(ladders, tmp_path):
    trainer = Trainer(config(tmp_path, resume=False, bf16=False))
    net = trainer.net
    quantiles = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    net.zero_grad(set_to_none=True)
    out = net(fixed_crop(), torch.zeros(fixed_crop().shape[0]))
    bits_per_pixel(out["likelihoods"], 64 * 64).sum().backward()
    assert all(q.grad is None or not q.grad.any() for q in quantiles)


def _optimizer_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer._optim_tensors()


def test_checkpoint_and_resume_restore_weights_optimizer_and_step(ladders, tmp_path):
    cfg = config(tmp_path, steps=3)
    first = train(cfg)
    assert first.step == 3 and first.checkpoint.is_file()
    log = [json.loads(line) for line in (cfg.out / "train.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [2]

    resumed = Trainer(cfg)
    assert resumed.step == 3
    saved, restored = first.net.state_dict(), resumed.net.state_dict()
    assert saved.keys() == restored.keys()
    for key in saved:
        assert torch.equal(saved[key], restored[key]), key
    a, b = _optimizer_tensors(first), _optimizer_tensors(resumed)
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.opt.state_dict()["param_groups"][0]["params"] == first.opt.state_dict()["param_groups"][0]["params"]

    # Training on continues the step counter up to the new total, from the restored state.
    cfg.steps = 5
    continued = train(cfg)
    assert continued.step == 5
    log = [json.loads(line) for line in (cfg.out / "train.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert Trainer(cfg).step == 5
    # resume=False starts afresh even though a checkpoint exists.
    assert Trainer(config(tmp_path, resume=False)).step == 0


def test_checkpoint_exports_float16_weights_that_load(ladders, tmp_path):
    cfg = config(tmp_path, steps=2, export=tmp_path / "w" / "tiny.safetensors")
    trainer = train(cfg)
    net = load_network(models.ladder.load_ladder("tiny"), tmp_path / "w")
    for name, p in trainer.net.named_parameters():
        assert torch.equal(net.get_parameter(name), p.detach().half().float()), name
    assert trainer.net.training  # exporting does not touch the training network


def test_exported_weights_say_what_they_started_from_even_after_a_resume(ladders, tmp_path):
    export_to = tmp_path / "w" / "tiny.safetensors"
    train(config(tmp_path / "a", steps=2, export=tmp_path / "first.safetensors"))
    assert weights_note(tmp_path / "first.safetensors") == "step 2"
    train(config(tmp_path / "b", steps=3, init=tmp_path / "first.safetensors", export=export_to))
    assert weights_note(export_to) == "step 3 after first.safetensors: step 2"
    train(config(tmp_path / "b", steps=5, init=tmp_path / "first.safetensors", export=export_to))  # resumed
    assert weights_note(export_to) == "step 5 after first.safetensors: step 2"


def test_training_from_exported_weights_stays_finite(ladders, tmp_path):
    """--init from float16 weights: the rate term must not become infinite."""
    first = Trainer(config(tmp_path, resume=False, bf16=False))
    sampler = CropSampler([KODAK], 64, seed=0)
    for _ in range(10):
        first.train_step(sampler.batch(4))
    export(first.net, first.ladder, tmp_path / "init.safetensors")
    second = Trainer(config(tmp_path / "b", resume=False, bf16=False, init=tmp_path / "init.safetensors"))
    x = sampler.batch(4) * 3 - 1  # out-of-range values: latents far from their predicted means
    out = second.net(x, torch.full((4,), 2.0))
    assert torch.isfinite(bits_per_pixel(out["likelihoods"], 64 * 64)).all()
    assert all(math.isfinite(second.train_step(sampler.batch(4))["loss"]) for _ in range(5))


def test_postfilter_starts_as_identity_from_weights_without_it_then_learns(ladders, tmp_path):
    """A ladder that newly enables the post-filter fine-tunes from weights that lack it."""
    base = Trainer(config(tmp_path, resume=False, bf16=False))
    export(base.net, base.ladder, tmp_path / "init.safetensors")
    filtered = Trainer(config(tmp_path / "pf", ladder="tinypf", resume=False, bf16=False, init=tmp_path / "init.safetensors"))
    new = {n for n, _ in filtered.net.named_parameters()} - {n for n, _ in base.net.named_parameters()}
    assert new and all(".body." in n for n in new)
    x, rows = fixed_crop(), torch.arange(3).float()
    with torch.no_grad():
        assert torch.equal(base.net.eval()(x, rows)["x_hat"], filtered.net.eval()(x, rows)["x_hat"])
    filtered.net.train()
    filtered.train_step(x)
    assert filtered.net.g_s[-1].body[-1].weight.abs().sum() > 0  # the filter's zero output layer has moved


def test_weights_that_do_not_fit_are_refused_even_with_new_modules_allowed(ladders, tmp_path):
    filtered = Trainer(config(tmp_path, ladder="tinypf", resume=False, bf16=False))
    export(filtered.net, filtered.ladder, tmp_path / "pf.safetensors")
    with pytest.raises(BadWeightsError, match="unexpected g_s"):  # the plain ladder has no post-filter
        Trainer(config(tmp_path / "b", resume=False, init=tmp_path / "pf.safetensors"))


def test_msssim_ladder_refuses_small_crops(ladders, tmp_path):
    assert MSSSIM_MIN_CROP == 161
    with pytest.raises(ValueError, match="at least 161 px"):
        Trainer(config(tmp_path, ladder="tinyms", crop=160))
    with pytest.raises(ValueError, match="multiple of 64"):  # the network codes multiples of 64 only
        Trainer(config(tmp_path, ladder="tinyms", crop=161, resume=False))
    trainer = Trainer(config(tmp_path, ladder="tinyms", crop=192, resume=False))
    assert trainer.ladder.metric == "msssim"
    # The MSE ladder takes small crops (multiples of 64).
    assert Trainer(config(tmp_path, ladder="tiny", crop=64, resume=False)).cfg.crop == 64
    with pytest.raises(ValueError, match="multiple of 64"):
        Trainer(config(tmp_path, ladder="tiny", crop=32, resume=False))


def test_crop_sampler_is_seeded_and_skips_small_images(tmp_path):
    a, b = CropSampler([KODAK], 48, seed=7), CropSampler([KODAK], 48, seed=7)
    x, y = a.batch(3), b.batch(3)
    assert x.shape == (3, 3, 48, 48) and x.dtype == torch.float32
    assert torch.equal(x, y) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(ValueError, match="no training image"):
        CropSampler([KODAK], 1000)


def test_crop_sampler_scales_change_detail_per_pixel():
    """Upscaled crops are smoother, downscaled ones busier, than crops at the image's own scale."""
    def detail(scales: tuple[float, float]) -> float:
        x = CropSampler([KODAK], 64, seed=3, scales=scales).batch(64)
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    plain, up, down = detail((1.0, 1.0)), detail((2.0, 2.0)), detail((0.5, 0.5))
    assert up < 0.6 * plain and down > 1.1 * plain
    with pytest.raises(ValueError, match="--scales"):
        CropSampler([KODAK], 64, scales=(2.0, 1.0))


def test_rates_are_gain_rows_unless_a_focus_range_takes_a_share(ladders, tmp_path):
    plain = Trainer(config(tmp_path, resume=False)).sample_rates(2000)
    assert set(plain.tolist()) == {0.0, 1.0, 2.0}
    focused = Trainer(config(tmp_path, resume=False, focus=(0.5, 1.5), focus_share=0.25)).sample_rates(4000)
    between = focused[focused != focused.round()]
    assert 0.5 <= float(between.min()) and float(between.max()) <= 1.5
    assert 0.22 < len(between) / len(focused) < 0.28  # the share, up to sampling noise
    assert set(focused[focused == focused.round()].tolist()) <= {0.0, 1.0, 2.0}


def test_lambda_of_a_fractional_rate_is_geometric_between_rows_like_the_ladder(ladders, tmp_path):
    trainer = Trainer(config(tmp_path, resume=False))
    rates = torch.tensor([0.0, 1.0, 2.0, 1.5, 0.25])
    got = trainer.lambdas_at(rates)
    assert torch.equal(got[:3], trainer.lambdas)  # rows: exactly the ladder's λ
    assert got[3:].tolist() == pytest.approx([trainer.ladder.lambda_at(1.5), trainer.ladder.lambda_at(0.25)], rel=1e-6)
    assert got[3] == pytest.approx(0.008, rel=1e-6)  # sqrt(0.004 · 0.016)


@pytest.mark.parametrize("focus, share, message", [((1.5, 0.5), 0.5, "--focus"), ((0.0, 2.5), 0.5, "--focus"),
                                                   ((0.0, 1.0), 1.5, "--focus-share")])
def test_a_focus_outside_the_ladder_is_refused(ladders, tmp_path, focus, share, message):
    with pytest.raises(ValueError, match=message):
        Trainer(config(tmp_path, resume=False, focus=focus, focus_share=share))


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, False), (True, False, True), (False, True, True)])
def test_bf16_is_the_default_only_where_the_cpu_has_bfloat16_instructions(ladders, tmp_path, monkeypatch,
                                                                          avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert Trainer(config(tmp_path, resume=False, device="cpu")).bf16 is expected  # emulated bf16: 2x slower
    assert Trainer(config(tmp_path, resume=False, device="cpu", bf16=not expected)).bf16 is (not expected)


def test_train_command_passes_the_focus_range_to_the_trainer(ladders, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    args = ["train", "--data", str(KODAK), "--out", str(tmp_path / "run"), "--steps", "0", "--ladder", "tiny"]
    refused = CliRunner().invoke(app, [*args, "--focus", "0.5", "2.5"])
    assert refused.exit_code != 0 and "--focus must be two rates LO <= HI within 0..2, got (0.5, 2.5)" in refused.output
    assert CliRunner().invoke(app, args).exit_code == 0  # no --focus: gain rows only


def test_a_time_limit_stops_early_with_a_checkpoint_and_the_same_command_continues(ladders, tmp_path):
    cfg = config(tmp_path, steps=100_000, minutes=0.001)  # 60 ms of training
    first = train(cfg)
    assert 1 <= first.step < 100_000
    assert Trainer(cfg).step == first.step  # the checkpoint holds where it stopped
    again = train(cfg)
    assert first.step < again.step < 100_000


@pytest.mark.parametrize("device, message", [("tpu-ish", "--device 'tpu-ish'"), ("cuda", "torch sees no CUDA GPU")])
def test_an_unusable_device_is_refused_in_one_line(ladders, tmp_path, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=message) as err:
        Trainer(config(tmp_path, resume=False, device=device))
    assert "\n" not in str(err.value)


def test_a_negative_time_limit_is_refused(ladders, tmp_path):
    with pytest.raises(ValueError, match="--minutes must be 0"):
        Trainer(config(tmp_path, resume=False, minutes=-1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_a_gpu_checkpoints_and_exports_weights_the_cpu_loads(ladders, tmp_path):
    cfg = config(tmp_path, steps=3, device="cuda", export=tmp_path / "w" / "tiny.safetensors")
    trainer = train(cfg)
    assert trainer.step == 3 and next(trainer.net.parameters()).is_cuda
    net = load_network(models.ladder.load_ladder("tiny"), tmp_path / "w")
    for name, p in trainer.net.named_parameters():
        assert torch.equal(net.get_parameter(name), p.detach().cpu().half().float()), name
    assert Trainer(config(tmp_path, steps=3, device="cpu")).step == 3  # a GPU checkpoint resumes on the CPU


def test_training_only_some_gain_rows_leaves_every_other_weight_exactly_as_it_was(ladders, tmp_path):
    """``--rows 2``: the new top row learns; rows 0-1 and every other tensor stay bit for bit, so the
    trained points code exactly as before.  A resumed run keeps to the same rows."""
    trainer = Trainer(config(tmp_path, resume=False, bf16=False, rows=(2,)))
    x = fixed_crop()
    eval_loss(trainer, x)  # a first forward zeroes the masked context weights of a fresh network
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    for _ in range(3):
        trainer.train_step(x)
    after = trainer.net.state_dict()
    moved = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert moved == ["y_gain", "y_gain_inv", "z_gain", "z_gain_inv"], moved
    for name in moved:
        assert torch.equal(before[name][:2], after[name][:2])
    assert not torch.equal(before["y_gain"][2], after["y_gain"][2])
    assert set(trainer.sample_rates(64).tolist()) == {2.0}
    trainer.save_checkpoint()
    assert Trainer(config(tmp_path, rows=(2,))).step == 3
    with pytest.raises(TrainingError, match="--rows must name gain rows within 0..2"):
        Trainer(config(tmp_path, resume=False, rows=(3,)))
