"""The camera application: frame sources, frame preprocessing, label smoothing, the per-frame
pipeline (pipeline.py) and its outputs (sinks/), the camera's web server (serve.py), and `run` (app.py)."""
