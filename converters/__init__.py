"""Keras -> TFLite and ONNX, quantization, the export gate and the model metadata."""
