"""The model contract every exported file and every caller share: the classes, the input, and the
version of the frame preprocessing that models are trained for (edge_runtime.camera.preprocess).

Bump PREPROCESSING_VERSION whenever preprocess_frame's output changes for the same frame: models
record the version they were made for, and load_model warns when the runtime's differs.
"""

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
"""Fashion-MNIST's classes: the first ten outputs of every model, in this order."""
MAX_CLASSES = NUM_CLASSES + 54
"""A model adapted on a device (field.adapt) may name classes of its user's beyond the ten, up to this
many in all: a bound a damaged or hostile file cannot stretch."""
IMAGE_SHAPE = (28, 28, 1)
PREPROCESSING_VERSION = "fmnist-edge-frame/1"
