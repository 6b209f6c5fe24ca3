"""The selftest: proof on the device that the accelerated engines predict what the model predicts
(FP32, FP16, INT8 against ONNX Runtime FP32 on a labeled set), how fast they run, and how that
compares with trtexec on the same engine file."""
