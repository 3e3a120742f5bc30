"""The measuring tools: predict, evaluate (Fashion-MNIST and real photos), bench and the device
block, info, and the metrics, plots and tables they share."""
