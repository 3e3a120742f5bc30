"""The inference core: model files in, probabilities out, no TensorFlow.

Backends for LiteRT and ONNX Runtime behind one interface (backends/), the Classifier and
load_model, the metadata each file carries, the model contract, the bundled int8 models
(models/), and the small helpers everything else shares (errors, atomic files, HOST:PORT).
"""
