"""Path policies: names read from files stay plain names, outputs stay out of the inputs.

* A name that comes from a file the pipeline reads (an image name in an RD table or
  a manifest, a bitstream's file name in a cache record) must be a plain file name:
  no folder separator, not ``.`` or ``..``, not absolute, no NUL, so joining it to a
  folder can never reach outside that folder.
* The output folder must not be the images folder or inside it (its CSV and PNG
  outputs would be taken for images by the next run), and the images must not sit
  in a folder a run replaces or empties (``OUT/submission``, ``OUT/decoded``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import PipelineError

REPLACED = ("submission", "decoded")  # sub-folders of OUT that a run deletes and rebuilds


def is_plain_name(name: object) -> bool:
    """Whether ``name`` is a plain, non-empty file name (no folder part, not . or ..)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name:
        return False
    return (
        PurePosixPath(name).name == name and PureWindowsPath(name).name == name
        and "/" not in name and "\\" not in name
    )


def plain_name(name: object, what: str, source: object) -> str:
    """``name`` if it is a plain file name, else PipelineError naming ``source``."""
    if not is_plain_name(name):
        raise PipelineError(f"{source}: {what} {name!r} is not a plain file name (no folders, '..' or absolute paths)")
    return name


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (after resolving links)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_layout(images: Path, out: Path) -> None:
    """PipelineError if the output folder and the images folder overlap dangerously."""
    if _inside(out, images):
        raise PipelineError(
            f"{out}: the output folder must not be the images folder {images} or inside it"
        )
    for name in REPLACED:
        if _inside(images, out / name):
            raise PipelineError(f"{images}: the images folder is inside {out / name}, which a run replaces")


def check_decoded_folder(decoded: Path, originals: Path, submission: Path) -> None:
    """PipelineError if emptying ``decoded`` could delete the originals or the submission."""
    for folder, what in ((originals, "original images"), (submission, "submission")):
        if _inside(folder, decoded) or _inside(decoded, folder):
            raise PipelineError(
                f"{decoded}: the folder for decoded images overlaps the {what} folder {folder}"
            )
