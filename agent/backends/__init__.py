"""Inference backends behind one interface: ONNX Runtime, and TensorRT (imported only when asked for)."""
