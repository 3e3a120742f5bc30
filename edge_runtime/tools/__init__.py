"""The measuring commands' back-ends: predict, evaluate (Fashion-MNIST and real photos), bench and the
device block, verify, info."""
