"""The cache parser on real TensorRT caches from public repositories (tests/fixtures/trt_cache/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration.trt_cache import QINT8_MAX, format_cache, parse_cache, tensorrt_version_number

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trt_cache"


def _read(name: str):
    return parse_cache((FIXTURES / name).read_text(encoding="utf-8"), name)


@pytest.mark.parametrize(
    "name, version, release, tensors",
    [
        ("cudla-samples-qat2ptq-trt8600.cache", 8600, "8.6.0", 197),
        ("deepstream-yolo-calib-trt8502-excerpt.table", 8502, "8.5.2", 24),
        ("deimkit-calibration-trt100900-excerpt.cache", 100900, "10.9.0", 17),
    ],
)
def test_header_gives_release_and_algorithm(name: str, version: int, release: str, tensors: int) -> None:
    cache = _read(name)
    assert (cache.version, cache.release(), cache.algorithm) == (version, release, "EntropyCalibration2")
    assert tensorrt_version_number(release) == version and len(cache.scales) == tensors


def test_scales_decode_from_big_endian_float32_hex() -> None:
    cudla = _read("cudla-samples-qat2ptq-trt8600.cache").scales
    assert cudla["images"] == pytest.approx(0.0078720935, rel=1e-7)  # 3c00f9f4
    assert cudla["/model.0/act/Mul_output_0"] == pytest.approx(0.2310298085, rel=1e-7)  # 3e6c9314
    yolo = _read("deepstream-yolo-calib-trt8502-excerpt.table").scales
    assert yolo["input"] == pytest.approx(0.0078759398, rel=1e-7)  # 3c010a16: inputs in [0, 1]
    assert yolo["/0/model.0/act/Sigmoid_output_0"] * QINT8_MAX == pytest.approx(1.0, rel=1e-3)  # a sigmoid: amax 1
    deim = _read("deimkit-calibration-trt100900-excerpt.cache").scales
    assert deim["images"] == pytest.approx(0.0079393443, rel=1e-7)  # 3c021406


def test_zero_scale_written_without_leading_zeros_is_read() -> None:
    """TensorRT 10.9 wrote `ONNXTRT_Broadcast_1855_output: 0`; the parser once demanded 8 digits."""
    assert _read("deimkit-calibration-trt100900-excerpt.cache").scales["ONNXTRT_Broadcast_1855_output"] == 0.0


def test_tensorrt_gives_max_pool_and_nearest_resize_their_input_scale() -> None:
    """The evidence for calibration.ranges.RANGE_PRESERVING, in a cache TensorRT 8.5.2 wrote."""
    scales = _read("deepstream-yolo-calib-trt8502-excerpt.table").scales
    pooled = scales["/0/model.9/cv1/act/Mul_output_0"]
    assert [scales[f"/0/model.9/{m}/MaxPool_output_0"] for m in ("m", "m_1", "m_2")] == [pooled] * 3
    assert scales["/0/model.11/Resize_output_0"] == scales["/0/model.10/act/Mul_output_0"]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".cache", ".table")))
def test_real_cache_survives_a_round_trip(name: str) -> None:
    cache = _read(name)
    again = parse_cache(format_cache(cache.amax(), cache.version, cache.algorithm))
    assert again.version == cache.version and set(again.scales) == set(cache.scales)
    for tensor, scale in cache.scales.items():
        assert again.scales[tensor] == pytest.approx(scale, rel=1e-6, abs=0.0)
