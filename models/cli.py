"""``clic train``, ``shift-down``, ``widen``, ``export``, ``import`` and ``ladders``: train, move, store,
import and list ladders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .extend import shift_ladder_down
from .ladder import available_ladders, load_ladder
from .train import TrainConfig, train
from .widen import widen_weights
from .weights import (
    BadWeightsError, build, export, load_into, load_state, network_tensors, weights_metadata, weights_note,
)

def train_command(
    data: list[Path] = typer.Option(
        ..., "--data", help="Folder of training images (repeat the option for several)."
    ),
    ladder: str = typer.Option("psnr", help="Ladder file (models/ladders/NAME.toml) whose network to train."),
    out: Optional[Path] = typer.Option(None, help="Run folder for checkpoint and log.", show_default="runs/LADDER"),
    steps: int = typer.Option(1000, help="Total optimisation steps; a resumed run continues up to this."),
    batch: int = typer.Option(16, help="Crops per batch (each gets a random rate point)."),
    crop: int = typer.Option(128, help="Crop side in pixels, a multiple of 64 (MS-SSIM ladders need >= 192)."),
    lr: float = typer.Option(1e-4, help="Learning rate of the main optimiser."),
    lr_drop_at: int = typer.Option(0, help="Divide the learning rate by 10 from this step on (0: never)."),
    focus: Optional[tuple[float, float]] = typer.Option(
        None, help="Also train at continuous rates in LO HI (a share of each batch, --focus-share): "
        "the fractional points the allocator picks most.", show_default="gain rows only"
    ),
    focus_share: float = typer.Option(0.5, help="Share of the crops drawn from --focus."),
    rows: Optional[list[int]] = typer.Option(
        None, "--rows", help="Train only these gain rows (repeat the option), every other weight frozen: new rows "
        "added by clic widen, while the trained points code exactly as before.", show_default="everything"),
    scales: tuple[float, float] = typer.Option(
        (1.0, 1.0), help="Take each crop at a random scale, log-uniform in LO HI (2 2: images seen at twice "
        "their size, smooth like high-resolution photographs)."),
    seed: int = typer.Option(0, help="Seed for initialisation and crop sampling."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    device: str = typer.Option("auto", help="Where to train: auto (a CUDA GPU when torch sees one, else the CPU), "
                               "cpu, cuda, cuda:1, ..."),
    minutes: float = typer.Option(0.0, help="Stop after this many minutes of training, checkpoint saved "
                                  "(0: no limit); the same command continues."),
    bf16: Optional[bool] = typer.Option(
        None, "--bf16/--no-bf16", show_default="where the CPU or GPU has bfloat16 instructions",
        help="Run the transforms under bfloat16 autocast (entropy model stays float32)."),
    channels_last: bool = typer.Option(True, help="Use the channels-last memory format (faster on CPU)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the transforms (about 5 % faster per step; "
                                 "the first run compiles for about 80 s)."),
    checkpoint_minutes: float = typer.Option(15.0, help="Minutes between checkpoints."),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoint.safetensors when it exists."),
    init: Optional[Path] = typer.Option(None, help="Start from these exported weights (e.g. the committed ones) when not resuming."),
    export: Optional[Path] = typer.Option(None, help="Also write float16 weights here at every checkpoint."),
    skip_bad_images: bool = typer.Option(
        False, "--skip-bad-images", help="Skip unreadable training images (one line each) instead of stopping."
    ),
) -> None:
    """Train a ladder's variable-rate network on random crops (all rate points at once)."""
    config = TrainConfig(
        ladder=ladder, data=data, out=out or Path("runs") / ladder, steps=steps, batch=batch,
        crop=crop, lr=lr, lr_drop_at=lr_drop_at, focus=focus, focus_share=focus_share,
        rows=tuple(rows) if rows else None, scales=scales, seed=seed,
        threads=threads, device=device, minutes=minutes, bf16=bf16, channels_last=channels_last, compile=compile,
        checkpoint_s=checkpoint_minutes * 60, resume=resume, init=init, export=export, skip_bad_images=skip_bad_images,
    )  # fmt: skip
    train(config)


def shift_down_command(
    ladder: str = typer.Option("psnr", help="Ladder file (models/ladders/NAME.toml) whose rate rows to move."),
    rows: int = typer.Option(1, help="How many rows to add below the lowest (as many top rows are dropped)."),
    out: Optional[Path] = typer.Option(None, help="Write the shifted weights here.", show_default="the ladder's own file"),
) -> None:
    """Move a ladder's rate points down (its lowest bpp is above the budget); then fine-tune with --init."""
    lad = load_ladder(ladder)
    out = out or lad.weights_path()
    lambdas = shift_ladder_down(lad, rows, out)
    typer.echo(f"{ladder}: rows shifted down by {rows}; lambdas now {lambdas}. "
               f"Fine-tune: clic train --ladder {ladder} --init {out} --no-resume ...")


def widen_command(
    ladder: str = typer.Option(..., help="Ladder file (models/ladders/NAME.toml) of the network to start."),
    source: str = typer.Option("psnr", "--from", help="Ladder whose trained network it starts from."),
    weights: Optional[Path] = typer.Option(None, help="Trained weights of --from.", show_default="its committed file"),
    out: Path = typer.Option(..., help="Write the carried-over weights here (then: clic train --init OUT)."),
) -> None:
    """Start a ladder from another's trained network: wider latent (M), gain rows moved to its λ."""
    src = load_ladder(source)
    weights = weights or src.weights_path()
    widen_weights(load_ladder(ladder), src, weights, out)
    typer.echo(f"{out}: {ladder} carried over from {weights}. Train: clic train --ladder {ladder} --init {out} ...")


def export_command(
    ladder: str = typer.Option(..., help="Ladder file (models/ladders/NAME.toml) whose weights to store again."),
    weights: Optional[Path] = typer.Option(
        None, help="Weights to read, or a training checkpoint.", show_default="the ladder's own file"
    ),
    out: Optional[Path] = typer.Option(None, help="Write them here.", show_default="the ladder's own file"),
) -> None:
    """Store a ladder's weights (or a training checkpoint's) at its ladder file's precision, e.g. after switching it to int8."""
    lad = load_ladder(ladder)
    weights, out = weights or lad.weights_path(), out or lad.weights_path()
    stored_for = weights_metadata(weights).get("ladder", ladder)
    if stored_for != ladder:
        raise BadWeightsError(f"{weights}: weights of ladder {stored_for!r}, not {ladder!r}")
    net = build(lad)
    load_into(net, network_tensors(load_state(weights)), weights)
    export(net, lad, out, note=f"{weights_note(weights)} (stored again in {lad.precision})")
    typer.echo(f"{out}: {ladder} in {lad.precision}, {out.stat().st_size:,} B")


def import_command(
    architecture: str = typer.Option(..., help="CompressAI zoo architecture: bmshj2018-factorized, bmshj2018-hyperprior, "
                                     "mbt2018-mean, mbt2018, cheng2020-anchor or cheng2020-attn."),
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="One checkpoint per rung, lowest rate first "
                                          "(repeat the option): a state dict, or a dict holding 'state_dict'."),
    name: str = typer.Option(..., help="Name of the new ladder (its candidates: learned-NAME-q1, ...)."),
    metric: str = typer.Option("mse", help="What the checkpoints were trained for: mse or msssim."),
    model_id: Optional[int] = typer.Option(None, help="Model id in the file headers (1-255).",
                                           show_default="the next free one from 16"),
) -> None:
    """Import CompressAI checkpoints as a ladder: safetensors weights and a ladder file, then use --ladder NAME."""
    from .zoo_import import import_checkpoints

    weights, ladder = import_checkpoints(architecture, checkpoint, name, metric, model_id)
    typer.echo(f"{ladder}: ladder {name!r}, rungs 0-{len(checkpoint) - 1}; weights {weights} "
               f"({weights.stat().st_size:,} B). Use: clic submission --ladder {name}")


def _measured(bpp: float | None) -> str:
    return "" if bpp is None else f", {bpp:.3f} bpp on Kodak"


def ladders_command() -> None:
    """List the ladder files: metric, λ per gain row, offered rate points, weights."""
    for ladder in available_ladders().values():
        path = ladder.weights_path()
        weights = f"{path} ({path.stat().st_size:,} B; {weights_note(path)})" if path.is_file() else "not trained"
        typer.echo(f"{ladder.name} (model id {ladder.model_id}, {ladder.architecture} "
                   f"{', '.join(f'{k}={v}' for k, v in ladder.arch)}, metric {ladder.metric}, {ladder.precision} weights)")
        typer.echo(f"  lambdas: {', '.join(f'{v:g}' for v in ladder.lambdas) or 'none (one imported network per rung)'}")
        typer.echo(f"  points:  {', '.join(f'{e.name} (rate {e.rate:g}{_measured(e.kodak_bpp)})' for e in ladder.entries)}")
        typer.echo(f"  weights: {weights}")
