"""TensorRT's own INT8 calibration (implicit quantization, TensorRT 8.5 to 10.x), in the build child.

:func:`make_calibrator` subclasses the calibrator class of the configured algorithm. TensorRT
calls it as NvInfer.h documents ``IInt8Calibrator`` (NVIDIA/TensorRT v8.6.1 l.8267-8340, v10.3.0
l.7677 on): ``read_calibration_cache`` first, and only when that returns nothing usable (no cache,
or a header naming another release or algorithm) ``get_batch`` until it returns None, then
``write_calibration_cache`` with the cache it computed. ``get_batch`` hands over one device
pointer per input name. ``get_batch_size`` is an implicit-batch notion (deprecated in 10.0,
"Implicit batch support is removed"): with explicit batch the calibration profile's shapes are
the batch, so it returns 1, as Polygraphy's calibrator does by default
(tools/Polygraphy/polygraphy/backend/trt/calibrator.py, v10.3.0).

Exceptions must not cross into TensorRT from a callback; ``get_batch`` records the error and
returns None, which TensorRT reports as a calibration failure (Polygraphy does the same).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from agent.backends.tensorrt.cuda import CudaLayer
from agent.util.fileio import atomic_write_bytes, read_if_present

# Calibration algorithm (the cache header's last field) -> TensorRT's calibrator class.
CLASSES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
}


def make_calibrator(
    trt: Any,
    algorithm: str,
    frames: Optional[np.ndarray],
    cache_path: Optional[str],
    replay: bytes,
    open_cuda: Callable[[], CudaLayer],
) -> Any:
    """A calibrator of ``algorithm``'s class over ``frames`` (batches, batch, ...), or replaying a cache.

    ``read_calibration_cache`` offers the cache at ``cache_path`` when there is one, else
    ``replay`` when there are no frames to calibrate on. The cache TensorRT writes goes to
    ``cache_path``. ``open_cuda`` is called on the first batch; :meth:`free` releases what it made.
    """
    base = getattr(trt, CLASSES[algorithm])

    class FrameCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)  # pybind trampolines must be initialised explicitly
            self.fed = 0
            self.cache_read = False
            self.written: Optional[bytes] = None
            self.errors: List[str] = []
            self._cuda: Optional[CudaLayer] = None
            self._stream: Any = None
            self._device = 0
            self._host: Optional[np.ndarray] = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: List[str]) -> Optional[List[int]]:
            if frames is None or self.fed >= len(frames):
                return None
            try:
                if len(names) != 1:
                    raise ValueError(f"the calibration frames feed one input; the network has {list(names)}")
                return [self._upload(np.ascontiguousarray(frames[self.fed], dtype=np.float32))]
            except Exception as exc:  # nothing may propagate into TensorRT
                self.errors.append(f"calibration batch {self.fed + 1}: {type(exc).__name__}: {exc}")
                return None

        def _upload(self, batch: np.ndarray) -> int:
            if self._cuda is None:
                self._cuda = open_cuda()
            cuda = self._cuda
            with cuda.active():
                if self._host is None:
                    self._stream = cuda.create_stream()
                    self._device = cuda.alloc_device(batch.nbytes)
                    self._host = cuda.alloc_pinned(batch.nbytes)
                staged = self._host[: batch.nbytes].view(np.float32).reshape(batch.shape)
                np.copyto(staged, batch)
                cuda.copy_htod_async(self._device, staged, self._stream)
                cuda.synchronize(self._stream)
            self.fed += 1
            return self._device

        def read_calibration_cache(self) -> Optional[bytes]:
            data = read_if_present(cache_path) or (replay if frames is None else b"")
            self.cache_read = bool(data)
            return data or None

        def write_calibration_cache(self, data: Any) -> None:
            self.written = bytes(data)
            if cache_path:
                atomic_write_bytes(cache_path, self.written)

        def free(self) -> None:
            """Release the stream and buffers; the calibrator may not be used afterwards."""
            cuda = self._cuda
            if cuda is None:
                return
            with cuda.active():
                if self._host is not None:
                    cuda.free_pinned(self._host)
                    cuda.free_device(self._device)
                    cuda.destroy_stream(self._stream)
            cuda.close()
            self._cuda, self._host = None, None

        def summary(self) -> Dict[str, Any]:
            header = (self.written or b"").split(b"\n", 1)[0].decode("ascii", "replace") or None
            return {"algorithm": algorithm, "batches_fed": self.fed, "cache_written": header, "errors": self.errors}

    return FrameCalibrator()
