"""TensorRT: the backend, its build in a child process, version differences (8.5 to 11), the
runtime, CUDA buffers, FP16 model conversion.
"""
