"""TensorRT calibration cache: writer and parser agree, and the format matches TensorRT's."""

from __future__ import annotations

import struct

import pytest

from agent.util.errors import InputError
from calibration.trt_cache import format_cache, hex_scale, parse_cache, scale_hex, tensorrt_version_number


def test_scale_is_big_endian_float32_hex() -> None:
    assert scale_hex(1.0) == "3f800000"
    assert scale_hex(0.5) == "3f000000"
    assert hex_scale("3c010204") == pytest.approx(struct.unpack(">f", bytes.fromhex("3c010204"))[0])


def test_version_numbers_follow_tensorrt_encoding() -> None:
    assert tensorrt_version_number("8.5.2") == 8502
    assert tensorrt_version_number("8.6.1.6") == 8601
    assert tensorrt_version_number("10.3.0") == 100300


def test_round_trip_keeps_every_tensor_at_float32_precision() -> None:
    amax = {"input_3": 0.99609375, "conv/out:0": 6.7135, "p_re_lu_7/add:0_pooling0": 1e-3, "softmax": 1.0}
    text = format_cache(amax, 8601)
    lines = text.splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    assert len(lines) == 1 + len(amax)
    parsed = parse_cache(text)
    assert parsed.version == 8601 and parsed.algorithm == "EntropyCalibration2"
    assert set(parsed.scales) == set(amax)
    for name, value in amax.items():
        assert parsed.scales[name] == pytest.approx(value / 127.0, rel=1e-7)
        assert parsed.amax()[name] == pytest.approx(value, rel=1e-6)
    assert format_cache(parsed.amax(), 8601) == text


def test_parser_reads_a_cache_as_tensorrt_writes_it() -> None:
    text = "TRT-8502-EntropyCalibration2\ninput: 3c010a14\nconv1: 3d2d5ab2\n"
    parsed = parse_cache(text)
    assert parsed.scales["input"] == pytest.approx(0.00787, rel=1e-3)
    assert parsed.scales["conv1"] == pytest.approx(0.04232, rel=1e-3)


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "empty"),
        ("TRT-8601-Bogus\nx: 3f800000\n", ":1:"),
        (
            "TRT-8601-EntropyCalibration2\nx: 3f80000000\n",
            ":2:",
        ),  # more than 8 hex digits (fewer: leading zeros left out)
        ("TRT-8601-EntropyCalibration2\nx 3f800000\n", ":2:"),
    ],
)
def test_bad_caches_are_refused_naming_the_line(text: str, where: str) -> None:
    with pytest.raises(InputError, match=where):
        parse_cache(text, "cal.cache")


def test_writer_refuses_unknown_algorithm_and_line_breaks() -> None:
    with pytest.raises(ValueError):
        format_cache({"a": 1.0}, 8601, "Percentile")
    with pytest.raises(ValueError):
        format_cache({"a\nb": 1.0}, 8601)
