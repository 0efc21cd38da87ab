"""The torch-free one-pass runtime: the ONNX stylizer, banded rendering, strength, looks,
LUTs, folders and video, all on NumPy, SciPy, Pillow and ONNX Runtime."""
