"""The model as deployed: resolved input spec and labels, an engine, and the decoder.

``Pipeline.infer_frames`` is the one path from frames to results; the daemon, benchmarks in
pipeline mode, calibration and accuracy checks all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

from agent.backends.base import Engine
from agent.config.sections import ModelConfig
from agent.model.feeds import require_feedable
from agent.model.info import InputSpec, ModelInfo, load_labels, read_model_info, resolve_input_spec
from agent.model.preprocess import make_batch
from agent.model.shapes import reshaped_copy
from agent.model.tasks.classification import ClassificationDecoder
from agent.model.tasks.detection import DetectionDecoder
from agent.sources.frames import Frame
from agent.util import packaged
from agent.util.errors import InputError
from agent.util.fileio import sha256_file


@dataclass
class PreparedModel:
    """A model file with everything needed to feed it and read it."""

    path: str
    sha256: str
    info: ModelInfo
    spec: InputSpec
    output: str
    labels: List[str]

    def input_shapes(self, batch: int = 0) -> Dict[str, tuple]:
        return {self.spec.name: self.spec.tensor_shape(batch or None)}


def prepare_model(model_cfg: ModelConfig, path: str = "") -> PreparedModel:
    """Resolve model.path (or ``path``, e.g. a quantized copy) against the model section; a model
    the pipeline cannot feed (agent.model.feeds) is an InputError."""
    model_path = packaged.resolve(path or model_cfg.path)
    info = read_model_info(model_path)
    require_feedable(model_path, info, model_cfg.input.name)
    spec = resolve_input_spec(model_cfg.input, info)
    if model_cfg.input.placeholder_shape:  # run and build the model at the configured shape
        model_path = reshaped_copy(model_path, sha256_file(model_path), spec.name, spec.tensor_shape())
        info = read_model_info(model_path)
    outputs = [t.name for t in info.outputs]
    output = model_cfg.output or outputs[0]
    if output not in outputs:
        raise InputError(f"model.output: model has no output {output!r}; it has {outputs}")
    out_info = next(t for t in info.outputs if t.name == output)
    classes = out_info.shape[-1] if model_cfg.task == "classification" and out_info.shape else 0
    labels = load_labels(model_cfg, classes or 0)
    return PreparedModel(model_path, sha256_file(model_path), info, spec, output, labels)


def make_decoder(model_cfg: ModelConfig, model: PreparedModel) -> Any:
    if model_cfg.task == "classification":
        c = model_cfg.classification
        try:
            return ClassificationDecoder(model.labels, c.activation, c.top_k, c.threshold, c.class_thresholds)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    return DetectionDecoder.from_config(model_cfg, model)


class Pipeline:
    """Frames in, decoded results out, through one engine."""

    def __init__(self, engine: Engine, model: PreparedModel, decoder: Any) -> None:
        self.engine = engine
        self.model = model
        self.decoder = decoder

    def infer_batch(self, frames: Sequence[Frame]) -> Dict[str, np.ndarray]:
        """Raw outputs for up to ``spec.batch`` frames (a short batch is zero-padded)."""
        batch, _ = make_batch([f.image for f in frames], self.model.spec)
        return self.engine.infer({self.model.spec.name: batch})

    def infer_frames(self, frames: Sequence[Frame]) -> List[Dict[str, Any]]:
        """Decoded results, one per frame, in order."""
        results: List[Dict[str, Any]] = []
        size = self.model.spec.batch
        for start in range(0, len(frames), size):
            chunk = frames[start : start + size]
            batch, boxes = make_batch([f.image for f in chunk], self.model.spec)
            outputs = self.engine.infer({self.model.spec.name: batch})
            decoded = self.decode(outputs, len(chunk), boxes)
            for frame, result in zip(chunk, decoded):
                results.append({"frame": frame.index, "origin": frame.origin, **result.as_dict()})
        return results

    def decode(self, outputs: Dict[str, np.ndarray], count: int, boxes: Sequence[Any]) -> List[Any]:
        if hasattr(self.decoder, "decode_boxes"):  # detection maps boxes back through the letterbox
            return self.decoder.decode_boxes(outputs, count, boxes)
        return self.decoder.decode(outputs[self.model.output], count)
