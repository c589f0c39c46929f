"""Shared test fixtures. Keeps TensorFlow quiet and every test seeded."""

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vsfusion  # noqa: E402,F401  (turns TensorFlow's oneDNN kernels on before anything loads it)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: ``VSFUSION_TEST_GRAPH=1`` runs every test's training in graph mode, as the scripts run it.
GRAPH_ONLY = os.environ.get("VSFUSION_TEST_GRAPH") == "1"


def _run_eagerly(on: bool) -> None:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.run_functions_eagerly(on)


@pytest.fixture(scope="session", autouse=True)
def _eager_tensorflow():
    """Under TensorFlow, the tests' fits run their steps eagerly instead of tracing them.

    A test trains for a few steps of tiny clips, so tracing the train, test and predict graphs is
    most of its time: eager steps make the tiny I3D/X3D runs 2-4x faster. The scripts trace, as
    do the tests marked ``graph`` (and every test with ``VSFUSION_TEST_GRAPH=1``); subprocesses
    the tests start are not affected. tf.data functions are always traced.
    """
    if GRAPH_ONLY:
        yield
        return
    _run_eagerly(True)
    yield
    _run_eagerly(False)


@contextlib.contextmanager
def graph_mode() -> Iterator[None]:
    """Train in graph mode inside the block (for module fixtures that build a run as the scripts
    do; tests use the ``graph`` marker)."""
    if GRAPH_ONLY:
        yield
        return
    _run_eagerly(False)
    try:
        yield
    finally:
        _run_eagerly(True)


@pytest.fixture(autouse=True)
def _graph_mode(request):
    """Tests marked ``graph`` train in graph mode (``tf.function``), as the scripts do."""
    if request.node.get_closest_marker("graph") is None:
        yield
        return
    with graph_mode():
        yield


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


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory, worker_id) -> Path:
    """A folder every pytest-xdist worker of this session shares (this session's own base
    folder when the tests run in one process)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder`` built by ``build(folder)`` once per test session, whichever worker asks first;
    the others wait on a lock and reuse it. For expensive read-only fixtures (a trained run) that
    tests in several files use; a test that changes it works on a copy."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / ".built").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                (folder / ".built").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder
