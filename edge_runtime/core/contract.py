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
IMAGE_SHAPE = (28, 28, 1)
PREPROCESSING_VERSION = "fmnist-edge-frame/1"
