"""The camera application: frame sources, frame preprocessing, label smoothing, the per-frame
pipeline (pipeline.py) and its outputs (sinks/), the web server, and `run` (app.py)."""
