"""Shared test fixtures: offline settings and small videos encoded on the fly with PyAV."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
