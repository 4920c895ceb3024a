"""Command-line codecs: a family defined by encode and decode command templates.

A codec-definition file (TOML, in ``pipeline/codecs/commands/`` or in the folder
``CLIC_CODECS_DIR`` names) makes a codec family out of any encoder and decoder
program, for example an HEVC or VVC encoder binary::

    name = "heif"                      # candidates heif-q10, heif-q20, ...
    encode = ["heif-enc", "-q", "{param}", "-o", "{output}", "{input}"]
    decode = ["heif-convert", "{input}", "{output}"]
    params = [10, 20, 30]              # one candidate per value of {param}
    label = "q"                        # the candidates' rate label: q10, q20, ...
    suffix = "heic"                    # file-name suffix of the encoder's output
    input = "png"                      # what the encoder reads: png or ppm
    output = "png"                     # what the decoder writes: png or ppm
    magic = "ftypheic"                 # bytes every file starts with, at magic_offset,
    magic_offset = 4                   # so that the decoder can tell the format
    timeout_s = 300

The grid, cache, allocation, packaging and verification treat its candidates like
any other.  Commands run without a shell, with a timeout, in a fresh scratch folder,
and are given only their input and output paths (relative to that folder).  The
cache fingerprint holds both templates and a hash of both programs, so a new
encoder build encodes again.  A package that uses the family ships the decoder
program in ``decoder/bin/`` (its bytes count in the decoder size) and its
definition in ``decoder/commands.json``; the program's shared libraries must be on
the decoding machine (``ldd`` lists them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from ..decode_program import COMMANDS_FILE, PIXEL_FORMATS, decode_command, fill, run_command, sniff_format
from ..errors import PipelineError

BUILT_IN = Path(__file__).parent / "commands"
NAME = re.compile(r"^[a-z][a-z0-9]*$")  # no "-": candidate names are FAMILY-LABELPARAM


@dataclass(frozen=True)
class CommandFamily:
    """One codec-definition file."""

    name: str
    encode: tuple[str, ...]
    decode: tuple[str, ...]
    params: tuple[float, ...]
    label: str
    suffix: str
    input: str
    output: str
    magic: str
    magic_offset: int
    timeout_s: float
    source: Path

    def decoder_spec(self, shipped: bool) -> dict:
        """What ``decode.py`` needs (``commands.json``): the program as shipped in ``bin/`` or from PATH."""
        program = Path(self.decode[0]).name if shipped else self.decode[0]
        return {"family": self.name, "decode": [program, *self.decode[1:]], "suffix": self.suffix,
                "output": self.output, "magic": self.magic, "magic_offset": self.magic_offset,
                "timeout_s": self.timeout_s}

    def program(self, which: str) -> Path:
        """The encoder or decoder program (``which``: "encode" or "decode"), found on PATH."""
        name = (self.encode if which == "encode" else self.decode)[0]
        found = shutil.which(name)
        if found is None:
            raise PipelineError(f"{self.source}: {which} program {name!r} not found on PATH")
        return Path(found).resolve()


@lru_cache(maxsize=None)
def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def parse_family(path: Path) -> CommandFamily:
    """Read and check one codec-definition file; a fault is one line naming the file."""
    try:
        raw = tomllib.loads(path.read_text())
        family = CommandFamily(
            name=raw["name"], encode=tuple(raw["encode"]), decode=tuple(raw["decode"]),
            params=tuple(float(p) for p in raw["params"]), label=raw.get("label", "p"),
            suffix=raw["suffix"], input=raw.get("input", "png"), output=raw.get("output", "png"),
            magic=raw["magic"], magic_offset=int(raw.get("magic_offset", 0)),
            timeout_s=float(raw.get("timeout_s", 300)), source=path,
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"{path}: not a codec definition ({type(exc).__name__}: {exc})") from None
    problems = [
        (not NAME.match(family.name), f"name {family.name!r} must be lower-case letters and digits"),
        (not family.params, "params is empty"),
        (not NAME.match(family.label), f"label {family.label!r} must be lower-case letters and digits"),
        (any(f"{{{k}}}" not in " ".join(family.encode) for k in ("input", "output", "param")),
         "encode must use {input}, {output} and {param}"),
        (any(f"{{{k}}}" not in " ".join(family.decode) for k in ("input", "output")),
         "decode must use {input} and {output}"),
        (family.input not in PIXEL_FORMATS or family.output not in PIXEL_FORMATS,
         f"input and output must be one of {', '.join(PIXEL_FORMATS)}"),
        (not family.magic, "magic must not be empty"),
        (sniff_format(b"\0" * family.magic_offset + family.magic.encode("latin-1") + b"\0" * 16) is not None,
         "magic must not be a classical format's (JPEG, WebP, AVIF, JPEG 2000)"),
        (family.timeout_s <= 0, "timeout_s must be positive"),
    ]
    for bad, problem in problems:
        if bad:
            raise PipelineError(f"{path}: {problem}")
    return family


def definition_folders() -> list[Path]:
    """Where codec definitions are read: ``CLIC_CODECS_DIR`` (if set) first, then the built-in ones."""
    extra = os.environ.get("CLIC_CODECS_DIR")
    return [Path(extra), BUILT_IN] if extra else [BUILT_IN]


@lru_cache(maxsize=None)
def _families(folders: tuple[Path, ...]) -> dict[str, CommandFamily]:
    found: dict[str, CommandFamily] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")):
            family = parse_family(path)
            found.setdefault(family.name, family)  # CLIC_CODECS_DIR's definition wins
    return found


def families() -> dict[str, CommandFamily]:
    """Every command-line codec family, by name."""
    return _families(tuple(definition_folders()))


def is_command(name: str) -> bool:
    return name.partition("-")[0] in families()


class CommandCodec:
    """A command-line family at one parameter (satisfies :class:`~pipeline.codecs.base.Codec`)."""

    def __init__(self, spec: CommandFamily, param: float):
        self.spec, self.param = spec, param
        self.family, self.rate_label = spec.name, f"{spec.label}{param:g}"
        self.name = f"{self.family}-{self.rate_label}"

    @property
    def fingerprint(self) -> str:
        programs = " ".join(_file_hash(self.spec.program(which)) for which in ("encode", "decode"))
        encode = fill(list(self.spec.encode), param=f"{self.param:g}")
        return f"command {encode} {list(self.spec.decode)} programs {programs}"

    def encode(self, image: np.ndarray) -> bytes:
        with tempfile.TemporaryDirectory(prefix="clic-encode-") as tmp:
            work = Path(tmp)
            source, target = work / f"in.{self.spec.input}", work / f"out.{self.spec.suffix}"
            buf = BytesIO()
            Image.fromarray(image, "RGB").save(buf, format=PIXEL_FORMATS[self.spec.input])
            source.write_bytes(buf.getvalue())
            argv = fill(list(self.spec.encode), input=source.name, output=target.name, param=f"{self.param:g}")
            run_command([str(self.spec.program("encode")), *argv[1:]], work, self.spec.timeout_s)
            if not target.is_file():
                raise ValueError(f"{self.spec.encode[0]} wrote no {target.name}")
            data = target.read_bytes()
        magic = self.spec.magic.encode("latin-1")
        if data[self.spec.magic_offset:self.spec.magic_offset + len(magic)] != magic:
            raise ValueError(f"{self.spec.encode[0]}'s output lacks the magic bytes {self.spec.magic!r} "
                             f"at offset {self.spec.magic_offset} that {self.spec.source.name} declares")
        return data

    def decode(self, data: bytes) -> np.ndarray:
        return decode_command(data, self.spec.decoder_spec(shipped=False), program_dir=None)


def candidate_names(family: str) -> list[str]:
    """A command-line family's candidates, in the order of its params."""
    spec = families()[family]
    return [CommandCodec(spec, p).name for p in spec.params]


def make_codec(name: str) -> CommandCodec:
    """The command-line candidate called ``name`` (e.g. ``heif-q30``)."""
    family, _, label = name.partition("-")
    spec = families().get(family)
    if spec is None or not label.startswith(spec.label):
        raise PipelineError(f"unknown candidate {name!r}")
    try:
        return CommandCodec(spec, float(label[len(spec.label):]))
    except ValueError:
        raise PipelineError(f"unknown candidate {name!r}") from None


def used_families(names: Iterable[str]) -> list[CommandFamily]:
    """The command-line families among these candidates, each once."""
    used = sorted({n.partition("-")[0] for n in names if is_command(n)})
    return [families()[f] for f in used]


def write_decoders(folder: Path, names: Iterable[str]) -> None:
    """Ship the decoder programs of the families in use (``bin/``) and their ``commands.json``."""
    used = used_families(names)
    if not used:
        return
    (folder / "bin").mkdir()
    for family in used:
        shutil.copy2(family.program("decode"), folder / "bin" / Path(family.decode[0]).name)
    (folder / COMMANDS_FILE).write_text(json.dumps([f.decoder_spec(shipped=True) for f in used], indent=1))
