"""Shared test settings and fixtures: offline mode, and one tiny random model folder per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
from tiny_model import tiny_model_folder  # noqa: E402


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """A tiny random FineVQ model saved as a real model folder, built once per test session."""
    return tiny_model_folder(tmp_path_factory.getbasetemp() / "finevq-tiny-test")
