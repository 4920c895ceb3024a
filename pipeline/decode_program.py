"""Submission decoder: decode every file of a folder to PNG images.

Usage::

    python decode.py [--jobs N] [--threads T] [--latents FILE] INPUT_DIR OUTPUT_DIR

Each input file becomes ``OUTPUT_DIR/<stem>.png``.  Files are decoded by N
worker processes at once (default: one per available core, at most one per file),
each on T torch threads (default: the cores divided among the processes).  The
learned latents do not depend on N or T, nor on the machine (``models.runtime.integer_prior``);
``--latents FILE`` writes each learned file's latent digest there (JSON, stem ->
digest), which ``clic verify`` compares with what the encoder recorded.  The format is told by the
file's magic bytes: JPEG, WebP, AVIF and JPEG 2000 are decoded by Pillow;
anything else must be a learned bitstream, decoded by the ``runtime`` package (the
project's ``models/runtime``), the ``ladders`` and the ``weights`` folders that sit
beside this program.

This file is copied verbatim into every submission as ``decoder/decode.py``.  It
must stay self-contained: Pillow and numpy (plus torch for learned streams; never
CompressAI) and nothing of the project outside its own folder.  The
pipeline imports the same functions, so the RD table and the submission decode
with one code path.

What it touches: it reads the regular files directly in INPUT_DIR (hidden files
and sub-folders are ignored; symbolic links are refused, so it reads nothing
outside INPUT_DIR) and, for learned streams, its own ``runtime/``, ``ladders/`` and ``weights/``.
A command-line decoder runs without a shell, with a timeout, in a hidden scratch
folder inside OUTPUT_DIR (removed afterwards), given only its input and output paths.
It writes only ``OUTPUT_DIR/<stem>.png`` (and the ``--latents`` file), each under a temporary name first and
then renamed (a link already there is replaced, never written through), so an
interrupted run leaves no half-written PNG.  Any bad input ends the run with one
line on stderr naming the file and exit status 2 (``--debug`` shows a traceback).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from concurrent.futures import ProcessPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
EXTENSIONS = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif", "JPEG2000": "j2k"}
# Never shipped, never imported: decoding needs neither the project's other packages nor CompressAI.
NOT_SHIPPED = ("eval", "pipeline", "allocate", "models", "compressai")


class UndecodableError(ValueError):
    """A file this decoder cannot turn into an image."""


def sniff_format(data: bytes) -> str | None:
    """Pillow's name for a classical image format, from magic bytes; None otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data[:4] == b"\xff\x4f\xff\x51" or data[:12] == JP2_SIGNATURE:
        return "JPEG2000"
    return None


def decode_classical(data: bytes, fmt: str) -> np.ndarray:
    """Decode a Pillow-readable file of a known format to H×W×3 uint8 RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=[fmt]) as im:
                return np.asarray(im.convert("RGB"))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UndecodableError(f"{fmt} file refused as a possible decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UndecodableError(f"corrupt {fmt} file ({' '.join(str(exc).split())})") from None


COMMANDS_FILE = "commands.json"  # the command-line codecs this decoder ships, if any
PIXEL_FORMATS = {"png": "PNG", "ppm": "PPM"}  # what a command-line codec reads and writes, for Pillow


def shipped_commands() -> list[dict]:
    """The command-line codecs beside this program (``commands.json``), or none."""
    path = HERE / COMMANDS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def command_for(data: bytes, commands: list[dict]) -> dict | None:
    """The command-line codec whose magic bytes ``data`` carries, if any."""
    for spec in commands:
        magic, offset = spec["magic"].encode("latin-1"), spec["magic_offset"]
        if data[offset:offset + len(magic)] == magic:
            return spec
    return None


def fill(template: list[str], **values: str) -> list[str]:
    """A command line from its template: ``{input}``, ``{output}``, ``{param}`` replaced."""
    argv = []
    for arg in template:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        argv.append(arg)
    return argv


def run_command(argv: list[str], workdir: Path, timeout_s: float) -> None:
    """Run one codec command: no shell, no input, ``workdir`` as its folder and home, a time limit;
    any failure is a ValueError with the program's last line of complaint."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "LC_ALL": "C"}
    try:
        done = subprocess.run(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout_s)
    except FileNotFoundError:
        raise UndecodableError(f"program {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise UndecodableError(f"{Path(argv[0]).name} ran past its {timeout_s:g} s limit") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise UndecodableError(f"{Path(argv[0]).name} exited with status {done.returncode}"
                               + (f": {said[-1]}" if said else ""))


def program_path(name: str, program_dir: Path | None) -> str:
    """A command's program: the copy in ``program_dir`` (a package's ``bin/``) if given, else from PATH."""
    if program_dir is not None:
        path = program_dir / Path(name).name
        if not path.is_file():
            raise UndecodableError(f"decoder program {path.name} missing from {program_dir}")
        if not os.access(path, os.X_OK):
            raise UndecodableError(f"{path} is not executable (unpack the decoder keeping file permissions)")
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise UndecodableError(f"program {name} not found on PATH")
    return found


def decode_command(data: bytes, spec: dict, program_dir: Path | None, scratch: Path | None = None) -> np.ndarray:
    """Decode one file with a command-line codec's decoder, in a fresh folder under ``scratch``."""
    with tempfile.TemporaryDirectory(prefix=".decode-", dir=scratch) as tmp:
        work = Path(tmp)
        source, target = work / f"in.{spec['suffix']}", work / f"out.{spec['output']}"
        source.write_bytes(data)
        argv = fill(spec["decode"], input=source.name, output=target.name)
        run_command([program_path(argv[0], program_dir), *argv[1:]], work, spec["timeout_s"])
        if not target.is_file():
            raise UndecodableError(f"{Path(argv[0]).name} wrote no {target.name}")
        return decode_classical(target.read_bytes(), PIXEL_FORMATS[spec["output"]])


def decode_learned(data: bytes, weights_dir: Path | None) -> tuple[np.ndarray, str]:
    """Decode a learned bitstream with the ``runtime`` package beside this file: (image, latent digest)."""
    if not (HERE / "runtime").is_dir():
        raise UndecodableError("unknown format (no learned decoder in this package)")
    try:
        from runtime.bitstream import is_learned_stream
        from runtime.decoder import decode
    except ImportError as exc:
        raise UndecodableError(f"learned decoder unavailable ({exc})") from None
    if not is_learned_stream(data):
        raise UndecodableError("unknown format (neither an image file nor a learned bitstream)")
    return decode(data, HERE / "ladders", weights_dir or HERE / "weights")


def decode_bytes(data: bytes, weights_dir: Path | None = None) -> np.ndarray:
    """Decode one file's bytes to H×W×3 uint8 RGB, whatever its format."""
    return decode_with_latent(data, weights_dir)[0]


def decode_with_latent(data: bytes, weights_dir: Path | None = None,
                       scratch: Path | None = None) -> tuple[np.ndarray, str | None]:
    """:func:`decode_bytes` and the latent digest of a learned stream (None for any other file);
    ``scratch``: where a command-line decoder gets its temporary folder."""
    fmt = sniff_format(data)
    if fmt:
        return decode_classical(data, fmt), None
    spec = command_for(data, shipped_commands())
    if spec is not None:
        return decode_command(data, spec, HERE / "bin", scratch), None
    return decode_learned(data, weights_dir)


def input_files(src: Path) -> list[Path]:
    """The files to decode: regular, visible files directly in ``src``, one per stem."""
    files, stems = [], {}
    for path in sorted(src.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            raise UndecodableError(f"{path.name}: a symbolic link; refusing to read outside {src}")
        if not path.is_file():
            continue
        if path.stem in stems:
            raise UndecodableError(f"{path.name}: same stem as {stems[path.stem]}; both would decode to {path.stem}.png")
        stems[path.stem] = path.name
        files.append(path)
    if not files:
        raise UndecodableError(f"{src}: no files to decode")
    return files


def write_png(image: np.ndarray, path: Path) -> None:
    """Write ``path`` atomically: a temporary name beside it, then a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(image, "RGB").save(f, format="PNG", compress_level=1)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_json(value: dict, path: Path) -> None:
    """Write ``path`` atomically (a temporary name beside it, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def decode_folder(src: Path, dst: Path, jobs: int = 1, threads: int | None = None) -> dict[str, str | None]:
    """Decode every visible file of ``src`` to ``dst/<stem>.png`` with ``jobs`` processes of
    ``threads`` torch threads each (default: the cores shared out); return stem -> latent digest."""
    if not src.is_dir():
        raise UndecodableError(f"{src}: input folder not found")
    if dst.resolve() == src.resolve():
        raise UndecodableError(f"{dst}: the output folder must not be the input folder")
    files = input_files(src)
    dst.mkdir(parents=True, exist_ok=True)
    jobs = min(jobs, len(files))
    threads = threads or max(1, available_cores() // max(jobs, 1))
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return {path.stem: decode_file(path, dst, threads) for path in files}
    # fork: the workers inherit sys.path (this folder first) and import torch themselves.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        # re-raises the first worker error here
        return dict(zip((p.stem for p in files), pool.map(decode_file, files, [dst] * len(files),
                                                            [threads] * len(files))))


def decode_file(path: Path, dst: Path, threads: int = 1) -> str | None:
    """Decode one file to ``dst/<stem>.png`` on ``threads`` torch threads; return its latent
    digest (None if classical).  Any problem is one line naming the file."""
    data = path.read_bytes()
    if sniff_format(data) is None and (HERE / "runtime").is_dir():
        import torch  # the learned decoder's: decodes the same latent on any thread count

        torch.set_num_threads(threads)
    try:
        image, digest = decode_with_latent(data, HERE / "weights", scratch=dst)
    except ValueError as exc:
        raise UndecodableError(f"{path.name}: {' '.join(str(exc).split())}") from None
    write_png(image, dst / f"{path.stem}.png")
    check_self_contained()
    return digest


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_self_contained() -> None:
    """Refuse to have used code from outside this program's folder.

    ``runtime`` must be the copy beside this file; the project's other packages and
    CompressAI must not have been imported at all (a server has only this folder).
    """
    runtime = sys.modules.get("runtime")
    if runtime is not None and HERE not in Path(runtime.__file__).resolve().parents:
        raise UndecodableError(f"learned decoder loaded from {runtime.__file__}, outside {HERE}")
    outside = sorted(name for name in NOT_SHIPPED if sys.modules.get(name) is not None)
    if outside:
        raise UndecodableError(f"the decoder imported {', '.join(outside)}, not shipped")


USAGE = "usage: python decode.py [--debug] [--jobs N] [--threads T] [--latents FILE] INPUT_DIR OUTPUT_DIR"


def parse_options(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """(options, the two folders) of a command line; None if it is not one."""
    options, rest = {}, list(argv)
    while rest and rest[0] in ("--jobs", "--threads", "--latents") and len(rest) > 1:
        options[rest[0][2:]] = rest[1]
        rest = rest[2:]
    counts_ok = all(options.get(k, "1").isdigit() and int(options.get(k, "1")) > 0 for k in ("jobs", "threads"))
    return (options, rest) if len(rest) == 2 and counts_ok else None


def main(argv: list[str]) -> int:
    debug = "--debug" in argv
    parsed = parse_options([a for a in argv if a != "--debug"])
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    options, (src, dst) = parsed
    jobs = int(options.get("jobs", available_cores()))
    threads = int(options["threads"]) if "threads" in options else None
    sys.dont_write_bytecode = True  # decoding must not grow the package (__pycache__)
    sys.path.insert(0, str(HERE))
    # Importing torch creates its compiler cache folder (/tmp/torchinductor_<user>, or where
    # TORCHINDUCTOR_CACHE_DIR says): keep it in the output folder, hidden, and remove it at the
    # end, so that nothing is written elsewhere (this decoder compiles nothing).
    scratch = Path(dst).absolute() / f".torch-cache.{os.getpid()}"
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(scratch)
    try:
        digests = decode_folder(Path(src), Path(dst), jobs, threads)
        check_self_contained()
        if "latents" in options:
            write_json({k: v for k, v in digests.items() if v is not None}, Path(options["latents"]))
    except (UndecodableError, OSError, MemoryError) as exc:
        if debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"decode.py: {message}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if previous is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
    print(f"decoded {len(digests)} files to {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
