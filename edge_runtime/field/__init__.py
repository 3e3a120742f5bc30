"""The field loop on the device: keep the frames the model was unsure of (collect.py, the camera's
--collect), let a person label them (label.py, `fmnist-edge label`), and teach the model from them."""
