"""TensorFlow and Keras for the training side: `from toolkit.tf import keras, tf`.

Importing this module costs seconds and hundreds of MB, so only commands that train, tune or
export import it, and only inside the command (converters.tf does the quiet import).
"""

from converters.tf import load

tf, keras = load()

__all__ = ["keras", "tf"]
