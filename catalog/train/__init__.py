"""Training and ONNX export (torch-only: never imported by the runtime path)."""
