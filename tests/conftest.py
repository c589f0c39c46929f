"""Shared test fixtures. Keeps TensorFlow quiet and every test seeded."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vsfusion  # noqa: E402,F401  (turns TensorFlow's oneDNN kernels on before anything loads it)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(0)
    np.random.seed(0)  # noqa: NPY002 - legacy global RNG seeded for any test that uses it


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
