"""Serving: the torch-free ONNX runtime and the Gradio demo."""
