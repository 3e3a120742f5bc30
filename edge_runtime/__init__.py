"""fmnist-edge's edge runtime: TensorFlow-free inference for a Fashion-MNIST classifier.

    from edge_runtime import load_model
    model = load_model()              # the bundled int8 model, or load_model("model_int8.onnx")
    probs = model.predict(images)     # uint8 [N,28,28,1] raw pixels -> float32 [N,10]
"""

from edge_runtime._version import __version__
from edge_runtime.classifier import Classifier, Prediction, bundled_model_path, load_model
from edge_runtime.errors import FmnistEdgeError
from edge_runtime.labels import CLASS_NAMES

__all__ = ["CLASS_NAMES", "Classifier", "FmnistEdgeError", "Prediction", "__version__", "bundled_model_path",
           "load_model"]
