"""The data a device reads: the Fashion-MNIST files (fashion_mnist.py), folders of real photos in the
labels.csv layout (photos.py), image files read with their size bounded (images.py), and the one way
photos are scored (scoring.py). NumPy and OpenCV only."""
