"""HTTP plumbing for the small servers a device runs (the camera's page, the labelling page): HOST:PORT
parsing (address.py), a quiet threading server and the handler basics they share (http.py)."""
