"""The inference core: model files in, probabilities out, no TensorFlow.

Backends for LiteRT and ONNX Runtime behind one interface (backends/), the Classifier and
load_model, the metadata each file carries and the checks on it, the model contract, the bundled int8
models (models/), TensorFlow Lite Micro's interpreter for microcontroller files (micro.py), an ONNX
reader for what ONNX Runtime does not show (onnx_proto.py), and the small helpers everything else
shares (errors, atomic files, quiet native output).
"""
