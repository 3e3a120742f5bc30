"""TensorFlow and Keras for the training side: `from toolkit.tf import keras, tf`.

Importing this module costs seconds and hundreds of MB, so only commands that train, tune or
export import it, and only inside the command (edge_runtime.core.quiet does the quiet import).
"""

from edge_runtime.core.quiet import load_tensorflow

tf, keras = load_tensorflow()

__all__ = ["keras", "tf"]
