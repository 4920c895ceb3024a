"""models.codec + models.runtime.bitstream with a tiny network trained on Kodak crops.

Every test codes real Kodak images with the ``tiny`` fixture (``conftest``): a tiny
ladder (N=16, M=24) trained a few steps on Kodak crops, exported to float16.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models.codec as codec
from eval.images import load_rgb8
from models.runtime import bitstream
from models.runtime.decoder import PAD_MULTIPLE
from models.runtime.synthesis import SubPixelDeconv
from models.conditional import LeanGaussianConditional
from models.runtime.bitstream import BadStreamError, Header
from models.runtime.decoder import latent_shapes
from models.ladder import LadderEntry, load_ladder
from models.weights import (
    EncoderMissingError, build, export, is_encoder_only, load_network, load_state, write_decoder_weights,
)
from tiny_ladder import write_ladder

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"
TINY_ID = 250  # the conftest ``tiny`` ladder's model id


def kodak(name: str = "kodim01.png") -> np.ndarray:
    return load_rgb8(KODAK / name)


def entry(tiny, rate: float) -> LadderEntry:
    return LadderEntry(tiny.ladder, 0, rate)


@torch.inference_mode()
def encoder_reconstruction(net, image: np.ndarray, rate: float) -> np.ndarray:
    """What the encoder itself reconstructs: g_s of compress()'s y_hat, cropped and rounded."""
    h, w = image.shape[:2]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.pad(x, (0, -w % PAD_MULTIPLE, 0, -h % PAD_MULTIPLE), mode="replicate")
    x_hat = net.g_s(net.compress(x, rate)["y_hat"])[..., :h, :w]
    return x_hat[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def valid_file(tiny, image=None, rate: float = 1.0) -> bytes:
    image = kodak()[:40, :70] if image is None else image
    return codec.encode_image(entry(tiny, rate), image, tiny.weights)


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "big")


# -- round trips --------------------------------------------------------------

ROUND_TRIP_IMAGES = {
    "1x1": lambda: kodak()[100:101, 200:201],
    "17x33": lambda: kodak("kodim05.png")[7:24, 11:44],
    "portrait 768x512": lambda: np.ascontiguousarray(kodak("kodim03.png").transpose(1, 0, 2)),
    "landscape 512x768": lambda: kodak("kodim23.png"),
}


@pytest.mark.parametrize("name", ROUND_TRIP_IMAGES)
def test_round_trip_reproduces_the_encoders_reconstruction(tiny, tmp_path, name):
    image = ROUND_TRIP_IMAGES[name]()
    rate = 1.5
    data = codec.encode_image(entry(tiny, rate), image, tiny.weights)
    path = tmp_path / "image.lic"
    path.write_bytes(data)
    assert path.stat().st_size == len(data)

    header, streams = bitstream.parse(path.read_bytes())
    assert (header.height, header.width, header.model_id, header.rate) == (*image.shape[:2], TINY_ID, rate)
    assert len(streams) == 3 and all(len(s) > 0 for s in streams)

    first = codec.decode_stream(path.read_bytes(), tiny.weights)
    second = codec.decode_stream(data, tiny.weights)
    assert first.shape == image.shape and first.dtype == np.uint8
    assert first.tobytes() == second.tobytes()
    # The entropy decoder reproduced the encoder's latent exactly.
    assert first.tobytes() == encoder_reconstruction(tiny.net, image, rate).tobytes()
    # And the image is a (poor, tiny-net) reconstruction, not noise.
    if image.size > 1000:
        mse = np.mean((first.astype(np.float64) - image) ** 2)
        assert 10 * np.log10(255**2 / mse) > 12


def test_a_stride_8_network_codes_its_latent_at_an_eighth_and_round_trips(ladder_dir, tmp_path):
    write_ladder(ladder_dir, "fine", 254, lambdas=[0.01, 0.1], rates=(0.0, 1.0), stride=8)
    ladder = load_ladder("fine")
    torch.manual_seed(0)
    export(build(ladder), ladder, tmp_path / "fine.safetensors")
    net = load_network(ladder, tmp_path)
    shapes = latent_shapes(net.N, net.M, net.stride, 17, 130)
    assert shapes == {"y": (24, 8, 24), "hyper": (net.N, 2, 6)}  # padded to 64 × 192
    for image in (kodak("kodim05.png")[7:24, 11:141], kodak("kodim23.png")):
        data = codec.encode_image(LadderEntry(ladder, 1, 1.0), image, tmp_path)
        decoded = codec.decode_stream(data, tmp_path)
        assert decoded.tobytes() == encoder_reconstruction(net, image, 1.0).tobytes()


def test_rate_not_a_multiple_of_1_256_codes_at_the_stored_rate(tiny):
    """The header stores rate*256 rounded; the encoder must use that rate too."""
    image = kodak("kodim05.png")  # 512×768: enough latents for rounding to notice 0.3 vs 77/256
    data = codec.encode_image(entry(tiny, 0.3), image, tiny.weights)
    header, streams = bitstream.parse(data)
    assert header.rate == round(0.3 * 256) / 256 != 0.3
    # The streams are exactly what the network codes at the stored rate ...
    with torch.inference_mode():
        x = codec.to_tensor(image)  # a multiple of 64 already
        expected = [s[0] for s in tiny.net.compress(x, header.rate)["strings"]]
    assert streams == expected
    # ... and decode to the encoder's reconstruction at that rate.
    decoded = codec.decode_stream(data, tiny.weights)
    assert decoded.tobytes() == encoder_reconstruction(tiny.net, image, header.rate).tobytes()


def test_learned_codec_adapter_matches_functions(tiny):
    image = kodak("kodim07.png")[:64, :96]
    lc = codec.LearnedCodec(tiny.ladder.entries[2], tiny.weights)
    assert lc.name == "learned-tiny-q3" and lc.family == "learned" and "1.5" in lc.rate_label
    data = lc.encode(image)
    assert data == codec.encode_image(tiny.ladder.entries[2], image, tiny.weights)
    assert codec.is_learned_stream(data)
    assert lc.decode(data).tobytes() == codec.decode_stream(data, tiny.weights).tobytes()


def test_encode_rejects_non_rgb8_images(tiny):
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(ValueError, match="H×W×3 uint8"):
            codec.encode_image(entry(tiny, 1.0), bad, tiny.weights)


# -- gains ---------------------------------------------------------------------

def test_integer_rates_pick_gain_rows_and_fractions_interpolate_geometrically(tiny):
    net = tiny.net
    tables = (net.y_gain, net.z_gain, net.y_gain_inv, net.z_gain_inv)
    with torch.no_grad():
        for r in range(net.n_rates):
            for got, table in zip(net.gains(torch.tensor([float(r)])), tables):
                assert torch.equal(got[0, :, 0, 0], table[r].abs())
        for got, table in zip(net.gains(torch.tensor([1.5])), tables):
            mean = (table[1].abs() * table[2].abs()).sqrt()
            torch.testing.assert_close(got[0, :, 0, 0], mean, rtol=1e-6, atol=0)
        # Several items at once, out-of-range rates clamp to the end rows.
        y_gain = net.gains(torch.tensor([-3.0, 0.0, 9.0]))[0][:, :, 0, 0]
        assert torch.equal(y_gain[0], y_gain[1]) and torch.equal(y_gain[2], net.y_gain[-1].abs())


def test_higher_rate_costs_more_bits_on_a_real_image(tiny):
    image = kodak("kodim19.png")
    sizes = {r: len(codec.encode_image(entry(tiny, r), image, tiny.weights)) for r in (0.0, 4.0)}
    assert sizes[0.0] < sizes[4.0]


# -- parser --------------------------------------------------------------------

def test_truncated_files_raise(tiny):
    data = valid_file(tiny)
    for n in (0, 1, 3, 10, 14, 15, len(data) // 2, len(data) - 1):
        with pytest.raises(BadStreamError):
            bitstream.parse(data[:n])
        with pytest.raises(BadStreamError):
            codec.decode_stream(data[:n], tiny.weights)


def test_every_flipped_byte_raises(tiny):
    data = valid_file(tiny)
    positions = list(range(16)) + list(range(16, len(data), max(1, len(data) // 40))) + [len(data) - 1]
    for pos in positions:
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[pos] ^= mask
            with pytest.raises(BadStreamError):
                codec.decode_stream(bytes(bad), tiny.weights)


def test_flipped_payload_byte_is_a_checksum_error(tiny):
    data = bytearray(valid_file(tiny))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(BadStreamError, match="checksum mismatch"):
        bitstream.parse(bytes(data))


def test_wrong_magic_and_version(tiny):
    data = valid_file(tiny)
    with pytest.raises(BadStreamError, match="wrong magic"):
        bitstream.parse(b"PNG" + data[3:])
    with pytest.raises(BadStreamError, match="format version 3"):
        bitstream.parse(with_crc(data[:3] + b"\x03" + data[4:-4]))
    # A version-1 stream (float entropy parameters) is refused with the reason, never decoded.
    with pytest.raises(BadStreamError, match=r"format version 1 \(float entropy parameters.*re-encode"):
        bitstream.parse(with_crc(data[:3] + b"\x01" + data[4:-4]))
    assert not codec.is_learned_stream(b"\x89PNG\r\n") and codec.is_learned_stream(data)


def test_unknown_model_id_with_valid_crc(tiny):
    data = valid_file(tiny)
    other = with_crc(data[:4] + bytes([77]) + data[5:-4])
    header, _ = bitstream.parse(other)  # a well-formed file ...
    assert header.model_id == 77
    with pytest.raises(BadStreamError, match="unknown model id 77"):  # ... of no known ladder
        codec.decode_stream(other, tiny.weights)


@pytest.mark.parametrize("height, width", [(65535, 65535), (0, 10), (10, 0), (20000, 20000), (4097, 8192)])
def test_absurd_sizes_fail_in_the_parser_before_any_allocation(tiny, monkeypatch, height, width):
    _, streams = bitstream.parse(valid_file(tiny))
    body = bitstream._FIXED.pack(bitstream.MAGIC, bitstream.VERSION, TINY_ID, 256, height, width)
    body += b"".join(bitstream._varint(len(s)) for s in streams[:2]) + b"".join(streams)
    data = with_crc(body)
    start = time.perf_counter()
    with pytest.raises(BadStreamError, match="invalid image size"):
        bitstream.parse(data)

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be reached")

    monkeypatch.setattr(codec, "load_network", no_network)
    with pytest.raises(BadStreamError, match="invalid image size"):
        codec.decode_stream(data, tiny.weights)
    assert time.perf_counter() - start < 1.0


def test_trailing_bytes_raise(tiny):
    data = valid_file(tiny)
    for extra in (b"\x00", b"junk", data[-4:]):
        with pytest.raises(BadStreamError, match="checksum"):
            codec.decode_stream(data + extra, tiny.weights)


def test_stream_lengths_beyond_the_file_raise():
    header = Header(TINY_ID, 1.0, 8, 8)
    data = bitstream.pack(header, [b"a" * 5, b"b" * 5, b"c"])
    # Same header, but stream 0 claims 100 bytes (varint 0x64), checksum recomputed.
    fixed = bitstream._FIXED.size
    bad = with_crc(data[:fixed] + b"\x64\x05" + data[fixed + 2 : -4])
    with pytest.raises(BadStreamError, match="exceed the file size"):
        bitstream.parse(bad)
    endless = with_crc(data[:fixed] + b"\xff" * 8)  # a varint that never ends
    with pytest.raises(BadStreamError, match="malformed stream length"):
        bitstream.parse(endless)


def test_pack_parse_round_trip_of_fields():
    header = Header(9, 2.75, 1, 65535)
    streams = [b"", b"\x00" * 300, b"xyz"]
    got_header, got_streams = bitstream.parse(bitstream.pack(header, streams))
    assert got_header == header and got_streams == streams
    with pytest.raises(ValueError):
        bitstream.pack(Header(9, 1.0, 0, 5), streams)
    with pytest.raises(ValueError):
        bitstream.pack(header, streams[:2])
    # The encoder never writes what the decoder refuses: at most MAX_PIXELS = 2**25.
    assert bitstream.MAX_PIXELS == 2**25
    bitstream.parse(bitstream.pack(Header(9, 1.0, 4096, 8192), streams))
    with pytest.raises(ValueError, match="exceeds the learned codec's limit"):
        bitstream.pack(Header(9, 1.0, 4097, 8192), streams)


def test_valid_crc_over_garbage_entropy_data_decodes_or_raises_bad_stream(tiny):
    """Garbage streams behind a correct checksum must not crash the decoder."""
    image = kodak()[:70, :90]
    header, streams = bitstream.parse(valid_file(tiny, image))
    rng = np.random.default_rng(0)
    for i in range(3):
        for replacement in (b"", b"\x00", rng.bytes(7), rng.bytes(len(streams[i]))):
            parts = list(streams)
            parts[i] = replacement
            try:
                out = codec.decode_stream(bitstream.pack(header, parts), tiny.weights)
            except BadStreamError:
                continue
            assert out.shape == image.shape and out.dtype == np.uint8


# -- fuzz ----------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=48).map(lambda b: bitstream.MAGIC + bytes([bitstream.VERSION]) + b),
    st.binary(min_size=7, max_size=48).map(lambda b: with_crc(bitstream.MAGIC + bytes([bitstream.VERSION]) + b)),
))
def test_fuzz_parse_raises_only_bad_stream_error(data):
    try:
        header, streams = bitstream.parse(data)
    except BadStreamError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert 1 <= header.height * header.width <= bitstream.MAX_PIXELS
    assert len(streams) == 3 and sum(map(len, streams)) <= len(data)


@pytest.fixture(scope="module")
def fuzz_seed(tiny):
    return valid_file(tiny, kodak("kodim10.png")[:33, :47], rate=2.0)


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_files_decode_or_raise_bad_stream_error(tiny, fuzz_seed, data):
    mutated = bytearray(fuzz_seed)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), label="kind")
        pos = data.draw(st.integers(0, max(0, len(mutated) - 1)), label="pos")
        if kind == "flip" and mutated:
            mutated[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and mutated:
            mutated[pos] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            mutated[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del mutated[pos : pos + data.draw(st.integers(1, 8))]
        else:
            del mutated[pos:]
    start = time.perf_counter()
    try:
        out = codec.decode_stream(bytes(mutated), tiny.weights)
    except BadStreamError:
        pass
    else:  # only a mutation that changed nothing can decode
        assert bytes(mutated) == fuzz_seed and out.shape == (33, 47, 3)
    assert time.perf_counter() - start < 5


# -- a packaged decoder's weights ---------------------------------------------

def test_decoder_only_weights_decode_the_same_pixels_and_refuse_to_encode(tiny, tmp_path):
    source = tiny.ladder.weights_path(tiny.weights)
    copy = tmp_path / "weights" / source.name
    copy.parent.mkdir()
    write_decoder_weights(source, copy)
    full, kept = load_state(source), load_state(copy)
    assert any(k.startswith("g_a.") for k in full) and "y_gain" in full and "y_gain_inv" in kept
    assert set(kept) == {k for k in full if not is_encoder_only(k)}
    assert all(torch.equal(kept[k], full[k]) for k in kept)
    data = valid_file(tiny, kodak("kodim05.png")[:64, :96])
    assert codec.decode_stream(data, copy.parent).tobytes() == codec.decode_stream(data, tiny.weights).tobytes()
    with pytest.raises(EncoderMissingError, match="decoder-only weights"):
        codec.encode_image(entry(tiny, 1.0), kodak()[:40, :70], copy.parent)
    again = tmp_path / "again.safetensors"  # the same bytes every time (a package is reproducible)
    write_decoder_weights(source, again)
    assert again.read_bytes() == copy.read_bytes()


def test_last_synthesis_layer_computes_the_transposed_convolution_as_a_sub_pixel_one():
    torch.manual_seed(0)
    layer = SubPixelDeconv(16, 3)
    reference = torch.nn.ConvTranspose2d(16, 3, 5, stride=2, padding=2, output_padding=1)
    reference.load_state_dict(layer.state_dict())  # the same parameters and keys
    for shape in [(1, 16, 1, 1), (2, 16, 17, 9), (1, 16, 6, 4)]:
        x = torch.randn(shape)
        with torch.no_grad():
            assert torch.equal(layer.train()(x), reference(x))  # training: the transposed convolution itself
            coded = layer.eval()(x)
        assert coded.shape == reference(x).shape
        assert torch.allclose(coded, reference(x), atol=1e-5, rtol=0), float((coded - reference(x)).abs().max())


def test_coding_tables_from_the_standard_library_quantile_are_compressais():
    """``models.conditional`` sizes its tables without scipy: the integer CDFs must not change."""
    from compressai.entropy_models import GaussianConditional

    ours, theirs = LeanGaussianConditional(None), GaussianConditional(None)
    for model in (ours, theirs):
        model.update_scale_table(torch.exp(torch.linspace(np.log(0.11), np.log(256), 64)))
    for name in ("_quantized_cdf", "_cdf_length", "_offset"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert ours._quantized_cdf.shape[1] > 1000  # the widest table spans ±6.1 × 256


@pytest.mark.parametrize("rate", [0.0, 2.5, 4.0])
def test_the_encoders_latent_is_what_the_file_decodes_to(tiny, rate):
    """The grid measures a learned cell by synthesising the latent the encoder coded
    (``codec.synthesised``) instead of entropy-decoding its file: image and digest must be the
    decoder's exactly, at every rate (a wrong latent would make the RD table lie)."""
    image = kodak("kodim23.png")[100:260, 300:492]
    coded = codec.code_image(entry(tiny, rate), image, tiny.weights)
    assert coded.data == codec.encode_image(entry(tiny, rate), image, tiny.weights)
    synthesised, digest = codec.synthesised(coded, tiny.weights)
    decoded, decoded_digest = codec.decode_with_digest(coded.data, tiny.weights)
    assert digest == decoded_digest
    assert np.array_equal(synthesised, decoded)
    assert synthesised.shape == image.shape


def test_encoding_with_a_network_rounds_the_rate_and_refuses_a_decoder_only_one(tiny):
    image = kodak()[:40, :70]
    data = codec.encode_with(tiny.net, TINY_ID, 0.3, image)  # 0.3 is not a multiple of 1/256
    assert data == codec.encode_image(entry(tiny, 0.3), image, tiny.weights)
    tiny.net.decoder_only = True
    try:
        with pytest.raises(EncoderMissingError, match="decoder-only"):
            codec.encode_with(tiny.net, TINY_ID, 1.0, image)
    finally:
        tiny.net.decoder_only = False
