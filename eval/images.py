"""The project-wide image conventions: H×W×3 uint8 RGB arrays, image folders, PNG output."""

import io
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from eval import atomic
from eval.errors import EvalInputError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"})


class BadImageError(EvalInputError):
    """An image file or image folder that cannot be used; the message is one line naming it."""


def _bad(path: Path, problem: object) -> BadImageError:
    return BadImageError(f"{path}: {' '.join(str(problem).split())}")


def load_rgb8(path: str | Path) -> np.ndarray:
    """Read an image as an H×W×3 uint8 RGB array.

    Policy: pixel values are taken as stored: no ICC colour management, EXIF orientation
    ignored, first frame of multi-frame files. Gray, bilevel and palette images are expanded
    to RGB; 16-bit gray (and Pillow's 32-bit "I" mode, values 0..65535) is scaled by
    round(v / 257); CMYK uses Pillow's conversion R = (255 - C)(255 - K) / 255.
    Alpha (RGBA, LA, PA, palette transparency) is dropped: colour values are kept as stored,
    not composited onto a background. Pillow itself reduces 16-bit RGB(A) files to their
    high byte.

    Raises BadImageError for a missing, unreadable, empty, truncated or non-image file, and
    for a decompression bomb (Pillow's MAX_IMAGE_PIXELS limit, its warning included).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise _bad(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return _to_rgb8(path, img)
    except BadImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise _bad(path, f"refused as a possible decompression bomb: {e}") from e
    except UnidentifiedImageError as e:
        raise _bad(path, "not an image file Pillow can read") from e
    except OSError as e:
        if e.strerror:
            raise _bad(path, f"cannot read: {e.strerror}") from e
        raise _bad(path, f"corrupt or truncated image: {e}") from e
    except (SyntaxError, ValueError, EOFError) as e:
        raise _bad(path, f"corrupt or truncated image: {e}") from e


def _to_rgb8(path: Path, img: Image.Image) -> np.ndarray:
    if img.mode == "I" or img.mode.startswith("I;16"):
        values = np.asarray(img).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise _bad(path, f"mode {img.mode} values outside 0..65535")
        gray = np.rint(values / 257).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "F":
        raise _bad(path, "floating-point images are not supported")
    return np.array(img.convert("RGB"))


def check_rgb8(array: np.ndarray) -> None:
    """Raise ValueError unless array is an H×W×3 uint8 array."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 array, got {array.dtype} {array.shape}")


def by_stem(paths: Iterable[Path]) -> dict[str, Path]:
    """Map each file stem to its path; raise BadImageError if two files share a stem."""
    index: dict[str, Path] = {}
    for path in paths:
        if path.stem in index:
            raise _bad(path, f"same stem as {index[path.stem].name}; files are matched by stem")
        index[path.stem] = path
    return index


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in folder, sorted by name.

    Extensions are matched case-insensitively; hidden files (".name") and other extensions
    are ignored. Raises BadImageError if the folder is missing or holds no image, or if two
    images share a stem (a.png and a.jpg): submissions name files by stem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise _bad(folder, "not a folder" if folder.exists() else "folder not found")
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise _bad(folder, f"cannot list folder: {e.strerror}") from e
    images = [
        p for p in entries
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if not images:
        raise _bad(folder, f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    by_stem(images)
    return images


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Write an H×W×3 uint8 array as a PNG atomically (temp file in the same folder, os.replace)."""
    check_rgb8(array)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    atomic.write_bytes(Path(path), buffer.getvalue())
