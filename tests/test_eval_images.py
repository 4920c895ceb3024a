"""eval.images: the load_rgb8 conversions and errors, list_images, save_png."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval import images
from eval.images import BadImageError, list_images, load_rgb8, save_png

KODIM01 = Path(__file__).resolve().parents[1] / "data" / "kodak" / "kodim01.png"
RNG = np.random.default_rng(0)


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def _assert_one_line_error(path: Path, match: str) -> None:
    with pytest.raises(BadImageError, match=match) as info:
        load_rgb8(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_rgb_png_round_trips_exactly(tmp_path):
    rgb = RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    got = load_rgb8(_save(Image.fromarray(rgb), tmp_path / "x.png"))
    assert got.dtype == np.uint8 and got.shape == (7, 5, 3)
    np.testing.assert_array_equal(got, rgb)


def test_gray_is_replicated_to_three_channels(tmp_path):
    gray = RNG.integers(0, 256, (6, 4), dtype=np.uint8)
    got = load_rgb8(_save(Image.fromarray(gray), tmp_path / "g.png"))
    np.testing.assert_array_equal(got, np.stack([gray] * 3, axis=2))


def test_gray_alpha_drops_alpha(tmp_path):
    gray = RNG.integers(0, 256, (6, 4), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (6, 4), dtype=np.uint8)
    img = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)])
    got = load_rgb8(_save(img, tmp_path / "la.png"))
    np.testing.assert_array_equal(got, np.stack([gray] * 3, axis=2))


def test_rgba_drops_alpha_without_compositing(tmp_path):
    rgba = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0  # fully transparent pixel keeps its stored colour
    got = load_rgb8(_save(Image.fromarray(rgba), tmp_path / "a.png"))
    np.testing.assert_array_equal(got, rgba[:, :, :3])


def test_palette_is_looked_up(tmp_path):
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (4, 9), dtype=np.uint8)
    img = Image.new("P", (9, 4))
    img.putdata(index.ravel().tolist())
    img.putpalette(palette.ravel().tolist())
    got = load_rgb8(_save(img, tmp_path / "p.png"))
    np.testing.assert_array_equal(got, palette[index])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_gray_rounds_v_over_257(tmp_path, suffix):
    values = np.array([[0, 128, 129, 32767, 32896, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    got = load_rgb8(_save(img, tmp_path / f"g16{suffix}"))
    np.testing.assert_array_equal(got[:, :, 0], [[0, 0, 1, 127, 128, 255]])
    np.testing.assert_array_equal(got[:, :, 0], got[:, :, 2])


def test_cmyk_jpeg_uses_multiplicative_conversion(tmp_path):
    cmyk = RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    path = _save(Image.fromarray(cmyk, mode="CMYK"), tmp_path / "c.jpg", quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
        decoded = np.asarray(raw).astype(np.float64)
    expected = np.rint((255 - decoded[:, :, :3]) * (255 - decoded[:, :, 3:]) / 255)
    np.testing.assert_array_equal(load_rgb8(path), expected.astype(np.uint8))


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    _assert_one_line_error(path, "empty file")


def test_truncated_png(tmp_path):
    data = KODIM01.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(path, "corrupt or truncated")


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    _assert_one_line_error(path, "not an image")


def test_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "nope.png", "No such file")


def test_unreadable_file(tmp_path, monkeypatch):
    # Tests may run as root, where chmod 000 does not block reads: simulate the OS refusal.
    path = _save(Image.new("RGB", (2, 2)), tmp_path / "locked.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images.Image, "open", refuse)
    _assert_one_line_error(path, "Permission denied")


@pytest.mark.parametrize("side", [12, 20])  # 144 px: Pillow warns; 400 px > 2x limit: Pillow raises
def test_decompression_bomb(tmp_path, monkeypatch, side):
    path = _save(Image.new("RGB", (side, side)), tmp_path / "bomb.png")
    monkeypatch.setattr(images.Image, "MAX_IMAGE_PIXELS", 100)
    _assert_one_line_error(path, "decompression bomb")


def test_list_images_sorted_case_insensitive_and_filtered(tmp_path):
    for name in ["b.jpg", "A.PNG", "c.TIFF", "d.webp", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["A.PNG", "b.jpg", "c.TIFF", "d.webp"]


def test_list_images_errors(tmp_path):
    with pytest.raises(BadImageError, match="folder not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(BadImageError, match="no images"):
        list_images(tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(BadImageError, match="same stem as a.jpg"):
        list_images(tmp_path)


def test_save_png_round_trips_and_leaves_no_temp(tmp_path):
    rgb = RNG.integers(0, 256, (3, 8, 3), dtype=np.uint8)
    path = tmp_path / "out.png"
    save_png(np.zeros_like(rgb), path)
    save_png(rgb, path)
    np.testing.assert_array_equal(load_rgb8(path), rgb)
    assert os.listdir(tmp_path) == ["out.png"]


def test_save_png_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    old = RNG.integers(0, 256, (3, 3, 3), dtype=np.uint8)
    save_png(old, path)

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_png(np.zeros_like(old), path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_rgb8(path), old)
    assert os.listdir(tmp_path) == ["out.png"]


def test_save_png_rejects_non_rgb8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_png(np.zeros((2, 2, 3), dtype=np.float32), tmp_path / "x.png")
