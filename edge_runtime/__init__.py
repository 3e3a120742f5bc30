"""fmnist-edge's edge runtime: TensorFlow-free inference for a Fashion-MNIST classifier.

    from edge_runtime import load_model
    model = load_model()              # the bundled int8 model, or load_model("model_int8.onnx")
    probs = model.predict(images)     # uint8 [N,28,28,1] raw pixels -> float32 [N,10]

One sub-package per part: `core` (backends, load_model, metadata, the bundled models), `data`
(Fashion-MNIST files, photo folders, their scoring), `camera` (sources, frame preprocessing,
smoothing, the per-frame pipeline and its sinks), `field` (collecting and labelling frames, adapting
the model on the device), `tools` (predict, evaluate, bench, verify, info, device), and one home each
for the report helpers (`report`) and the HTTP plumbing (`web`).
"""

from edge_runtime._version import __version__
from edge_runtime.core.classifier import Classifier, Prediction, bundled_model_path, load_model
from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.core.errors import FmnistEdgeError

__all__ = ["CLASS_NAMES", "Classifier", "FmnistEdgeError", "Prediction", "__version__", "bundled_model_path",
           "load_model"]
