"""The model as deployed: what the ONNX file declares, the input spec, frame-to-tensor
preprocessing, the pipeline around an engine, and task decoders.
"""
