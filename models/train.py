"""Train a ladder's variable-rate network: all rate points at once.

Each batch item gets a random gain row ``r`` and its loss is
``λ_r · D + R`` (D = 255²·MSE or 1 − MS-SSIM, R = bits per pixel), so one
network learns the whole ladder for the price of one model.  Checkpoints
(float32 weights + Adam state, safetensors) are written atomically every
``checkpoint_s`` seconds and on exit; ``resume`` continues from one, and
``init`` starts from exported (float16) weights, e.g. the committed ones.
"""

from __future__ import annotations

import json
import signal
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from pytorch_msssim import ms_ssim
from tqdm import tqdm

from .runtime.decoder import PAD_MULTIPLE
from .data import CropSampler, TrainingError
from .extend import GAIN_TABLES
from .ladder import Ladder, load_ladder
from .weights import (
    CHECKPOINT_PREFIX, BadWeightsError, atomic_save, build, export, load_into, load_state, network_tensors,
    weights_metadata, weights_note,
)

MSSSIM_MIN_CROP = 161  # 5 scales of an 11-px window


@dataclass
class TrainConfig:
    ladder: str = "psnr"
    data: list[Path] = field(default_factory=list)
    out: Path = Path("runs/psnr")
    steps: int = 1000  # total steps (a resumed run continues up to this)
    batch: int = 16
    crop: int = 128
    lr: float = 1e-4
    lr_drop_at: int = 0  # step after which lr is divided by 10 (0: never)
    focus: tuple[float, float] | None = None  # also train at continuous rates in this range
    focus_share: float = 0.5  # share of the items drawn from ``focus`` (the rest: gain rows)
    # Train only these gain rows (e.g. rows added by ``clic widen`` beyond the trained ones); every
    # other tensor stays as it is, so the other rows' points code exactly as before.  None: everything.
    rows: tuple[int, ...] | None = None
    scales: tuple[float, float] = (1.0, 1.0)  # each crop at a random scale in this range (CropSampler)
    seed: int = 0
    threads: int = 2  # torch CPU threads
    device: str = "auto"  # "cuda" when a GPU is visible, else "cpu"; or any torch device name
    minutes: float = 0.0  # stop (checkpoint saved) after this much training time (0: no limit)
    bf16: bool | None = None  # transforms in bfloat16 (None: where it is fast); entropy model always float32
    channels_last: bool = True
    compile: bool = False  # torch.compile the transforms: ~5 % faster steps after a cold compile of ~80 s
    checkpoint_s: float = 900.0
    log_every: int = 50
    resume: bool = True  # continue from out/checkpoint.safetensors if present
    init: Path | None = None  # else start from these exported weights
    export: Path | None = None  # write float16 weights here at every checkpoint
    skip_bad_images: bool = False  # skip unreadable training images instead of stopping


def distortion(ladder: Ladder, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-item distortion in the units its λ was chosen for."""
    if ladder.metric == "mse":
        return 255**2 * (x - x_hat).pow(2).mean(dim=(1, 2, 3))
    return 1 - ms_ssim(x, x_hat.clamp(0, 1), data_range=1.0, size_average=False)


def bits_per_pixel(likelihoods: dict[str, torch.Tensor], pixels: int) -> torch.Tensor:
    return sum(-torch.log2(v).sum(dim=(1, 2, 3)) for v in likelihoods.values()) / pixels


class Trainer:
    """Owns the network, its two optimisers and the checkpoint files."""

    def __init__(self, config: TrainConfig):
        self.cfg = config
        self.ladder = load_ladder(config.ladder)
        if self.ladder.metric == "msssim" and config.crop < MSSSIM_MIN_CROP:
            usable = -(-MSSSIM_MIN_CROP // PAD_MULTIPLE) * PAD_MULTIPLE
            raise TrainingError(f"MS-SSIM training needs crops of at least {MSSSIM_MIN_CROP} px (e.g. --crop {usable})")
        if config.crop < PAD_MULTIPLE or config.crop % PAD_MULTIPLE:
            raise TrainingError(f"--crop must be a positive multiple of {PAD_MULTIPLE}, got {config.crop}")
        if config.batch < 1 or config.steps < 0 or config.threads < 1:
            raise TrainingError("--batch and --threads must be at least 1 and --steps at least 0")
        top = len(self.ladder.lambdas) - 1
        if config.focus is not None and not 0 <= config.focus[0] <= config.focus[1] <= top:
            raise TrainingError(f"--focus must be two rates LO <= HI within 0..{top}, got {config.focus}")
        if not 0 <= config.focus_share <= 1:
            raise TrainingError(f"--focus-share must be within 0..1, got {config.focus_share}")
        if config.rows is not None and (not config.rows or not all(0 <= r <= top for r in config.rows)):
            raise TrainingError(f"--rows must name gain rows within 0..{top}, got {config.rows}")
        if config.minutes < 0:
            raise TrainingError(f"--minutes must be 0 (no limit) or more, got {config.minutes}")
        self.device = training_device(config.device)
        self.bf16 = bf16_is_fast(self.device) if config.bf16 is None else config.bf16
        torch.manual_seed(config.seed)
        torch.set_num_threads(config.threads)
        self.net = build(self.ladder).train().to(self.device)
        if config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if config.compile:  # in place: state-dict keys (checkpoints, exports) stay the same
            self.net.g_a.compile()
            self.net.g_s.compile()
        aux = {n for n, _ in self.net.named_parameters() if n.endswith(".quantiles")}
        params = dict(self.net.named_parameters())
        if config.rows is not None:
            aux = set()
            params = self._freeze_all_but_rows(params, config.rows)
        self.opt = torch.optim.Adam([params[n] for n in sorted(params) if n not in aux], config.lr)
        # The entropy bottleneck's quantiles have their own optimiser (none when they are frozen).
        self.aux_opt = torch.optim.Adam([params[n] for n in sorted(aux)], 1e-3) if aux else None
        self.lambdas = torch.tensor(self.ladder.lambdas, device=self.device)
        self.step = 0
        self.origin = ""  # the weights this run started from (``--init``) and their note
        self.checkpoint = config.out / "checkpoint.safetensors"
        if config.resume and self.checkpoint.is_file():
            self._load_checkpoint()
        elif config.init is not None:
            fresh = load_into(self.net, load_state(config.init), config.init, allow_new=True)
            self.origin = f"{config.init.name}: {weights_note(config.init)}"
            if fresh:
                tqdm.write(f"{config.init}: {len(fresh)} tensors not in these weights start fresh ({fresh[0]}, ...)")

    def _freeze_all_but_rows(self, params: dict[str, torch.nn.Parameter], rows: tuple[int, ...]) -> dict:
        """Freeze every parameter but the gain tables, and of those all rows but ``rows``
        (their gradients are masked): the parameters left to the optimiser."""
        tables = {name: p for name, p in params.items() if name in GAIN_TABLES}
        if len(tables) != len(GAIN_TABLES):
            raise TrainingError(f"--rows: the {self.ladder.architecture} network has no gain tables")
        for name, param in params.items():
            param.requires_grad_(name in tables)
        keep = torch.zeros(len(self.ladder.lambdas), 1, device=self.device)
        keep[list(rows)] = 1
        for param in tables.values():
            param.register_hook(lambda grad: grad * keep)
        return tables

    def _optimisers(self) -> list[tuple[str, torch.optim.Optimizer]]:
        return [("opt", self.opt)] + ([("aux", self.aux_opt)] if self.aux_opt is not None else [])

    # -- checkpoints -------------------------------------------------------
    def _optim_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for tag, opt in self._optimisers():
            for idx, state in opt.state_dict()["state"].items():
                for key, value in state.items():
                    out[f"{tag}.{idx}.{key}"] = torch.as_tensor(value)
        return out

    def save_checkpoint(self) -> None:
        tensors = {CHECKPOINT_PREFIX + k: v for k, v in self.net.state_dict().items()}
        tensors.update(self._optim_tensors())
        tensors = {k: v.cpu() for k, v in tensors.items()}
        meta = {"step": str(self.step), "origin": self.origin, "config": json.dumps(asdict(self.cfg), default=str)}
        atomic_save(tensors, self.checkpoint, meta)
        if self.cfg.export is not None:
            snapshot = build(self.ladder)
            snapshot.load_state_dict(self.net.state_dict())
            origin = f" after {self.origin}" if self.origin else ""
            export(snapshot, self.ladder, self.cfg.export, note=f"step {self.step}{origin}")

    def _load_checkpoint(self) -> None:
        state = load_state(self.checkpoint)  # BadWeightsError (one line) for a damaged file
        meta = weights_metadata(self.checkpoint)
        try:
            self.step, self.origin = int(meta["step"]), meta.get("origin", "")
        except (KeyError, ValueError) as exc:
            raise BadWeightsError(f"{self.checkpoint}: not a checkpoint of this trainer (no step: {exc})") from None
        load_into(self.net, network_tensors(state), self.checkpoint)
        for tag, opt in self._optimisers():
            per_param: dict[int, dict] = {}
            for key, value in state.items():
                if key.startswith(f"{tag}."):
                    _, idx, name = key.split(".", 2)
                    per_param.setdefault(int(idx), {})[name] = value
            opt.load_state_dict({**opt.state_dict(), "state": per_param})

    # -- training ----------------------------------------------------------
    def current_lr(self) -> float:
        drop = self.cfg.lr_drop_at and self.step >= self.cfg.lr_drop_at
        return self.cfg.lr / 10 if drop else self.cfg.lr

    def sample_rates(self, n: int) -> torch.Tensor:
        """Each item's rate: a random gain row or, with ``focus``, a share of them
        uniform in that range (e.g. the fractional points an allocator picks most)."""
        if self.cfg.rows is not None:
            rows = torch.tensor(self.cfg.rows)
            return rows[torch.randint(len(rows), (n,))].float().to(self.device)
        rates = torch.randint(len(self.lambdas), (n,)).float()
        if self.cfg.focus is not None:
            lo, hi = self.cfg.focus
            focused = torch.rand(n) < self.cfg.focus_share
            rates = torch.where(focused, lo + (hi - lo) * torch.rand(n), rates)
        return rates.to(self.device)

    def lambdas_at(self, rates: torch.Tensor) -> torch.Tensor:
        """λ of each item's rate (``Ladder.lambda_at``: geometric between rows, as the gains)."""
        return torch.tensor([self.ladder.lambda_at(rate) for rate in rates.tolist()], device=self.device)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch; returns the batch's mean metrics."""
        x = x.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        rates = self.sample_rates(x.shape[0])
        # Both gradients first, then both updates, so that a non-finite loss stops
        # the run with every weight (quantiles too) as before this step.
        aux_loss = self.net.aux_loss() if self.aux_opt is not None else torch.zeros((), device=self.device)
        if self.aux_opt is not None:
            self.aux_opt.zero_grad(set_to_none=True)
            aux_loss.backward()
        out = self.net(x, rates, bf16=self.bf16)
        dist = distortion(self.ladder, x, out["x_hat"])
        bpp = bits_per_pixel(out["likelihoods"], x.shape[2] * x.shape[3])
        loss = (self.lambdas_at(rates) * dist + bpp).mean()
        for group in self.opt.param_groups:
            group["lr"] = self.current_lr()
        self.opt.zero_grad(set_to_none=True)  # also drops what aux_loss left on the entropy bottleneck
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], 1.0)
        if not bool(torch.isfinite(loss) & torch.isfinite(norm) & torch.isfinite(aux_loss)):
            raise TrainingError(
                f"step {self.step + 1}: loss {loss.item():g}, gradient norm {norm.item():g}, "
                f"auxiliary loss {aux_loss.item():g}: training diverged; "
                "the weights stay as before this step (try a lower --lr or other --init weights)"
            )
        self.opt.step()
        if self.aux_opt is not None:
            self.aux_opt.step()
        self.step += 1
        mse = (x - out["x_hat"].clamp(0, 1)).pow(2).mean().item()
        return {
            "loss": loss.item(),
            "bpp": bpp.mean().item(),
            "psnr": 10 * math.log10(1 / max(mse, 1e-10)),
            "aux": aux_loss.item(),
        }

    def run(self, sampler: CropSampler) -> None:
        cfg = self.cfg
        cfg.out.mkdir(parents=True, exist_ok=True)
        log = (cfg.out / "train.log").open("a")
        last_ckpt, t0, seen = time.time(), time.time(), 0
        deadline = t0 + cfg.minutes * 60 if cfg.minutes else math.inf
        where = f"{self.device}, bf16" if self.bf16 else str(self.device)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.ladder} ({where})", unit="step")
        previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops like Ctrl-C: checkpoint first
        try:
            while self.step < cfg.steps and time.time() < deadline:
                stats = self.train_step(sampler.batch(cfg.batch))
                seen += cfg.batch
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", bpp=f"{stats['bpp']:.3f}", psnr=f"{stats['psnr']:.2f}")
                if self.step % cfg.log_every == 0:
                    rate = seen / (time.time() - t0)
                    record = {"step": self.step, "lr": self.current_lr(), "samples_per_s": round(rate, 2), **stats}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if time.time() - last_ckpt > cfg.checkpoint_s:
                    self.save_checkpoint()
                    last_ckpt = time.time()
            if self.step < cfg.steps:
                tqdm.write(f"--minutes {cfg.minutes:g} reached at step {self.step}; checkpoint saved")
        except KeyboardInterrupt:
            tqdm.write(f"stopped at step {self.step}; checkpoint saved")
        finally:
            signal.signal(signal.SIGTERM, previous)
            bar.close()
            self.save_checkpoint()
            log.close()


def training_device(name: str) -> torch.device:
    """``auto``: the first GPU when torch sees one, else the CPU; other names as torch spells them."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise TrainingError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: torch sees no CUDA GPU here (use --device cpu or auto)")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 autocast speeds training up here: on GPUs that support it
    and on CPUs with bfloat16 instructions (AVX512-BF16 or AMX).  Elsewhere torch
    emulates it, slower than float32 (`python bench/bench_train.py` times both here)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def train(config: TrainConfig) -> Trainer:
    """Train (or continue training) a ladder's network as configured."""
    trainer = Trainer(config)
    sampler = CropSampler(config.data, config.crop, seed=config.seed + trainer.step, skip_bad=config.skip_bad_images,
                          scales=config.scales)
    trainer.run(sampler)
    return trainer
