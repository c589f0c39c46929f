"""``--distribute``: data-parallel training of the stages on several devices.

The fast tests check the pieces in this process (one device). The slow ones train in fresh
interpreters on two logical CPU devices (``tests/stages/two_devices.py``: TensorFlow's
``set_logical_device_configuration``, JAX's ``--xla_force_host_platform_device_count``), and with
two local TensorFlow workers (``TF_CONFIG`` on 127.0.0.1), and compare with a one-device run of
the same seed and global batch.

Tolerance of the comparisons: the replicas compute the same global-batch step as one device; only
the order of float32 additions differs (each replica sums its half of the batch, then the halves
are added), about 1e-7 relative per operation. Over the 9 optimisation steps of these runs the
measured differences stay below 1e-6 relative in the logged losses and 1e-5 absolute in the
weights; ``rtol=1e-4`` / ``atol=1e-4`` leaves two orders of magnitude for other CPUs and BLAS
builds while catching any real difference (a replica seeing other samples, unsynchronised batch
statistics, a loss averaged per replica: each changed the first epoch's loss by more than 1e-2
when tried).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train_sensor  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.config import ConfigError, SensorConfig, VideoConfig, build_parser  # noqa: E402
from vsfusion.stages import distribute  # noqa: E402
from vsfusion.stages.common import predict_arrays  # noqa: E402

RTOL, ATOL = 1e-4, 1e-4
SENSOR = ["--epoch", "3", "--depth", "2", "--filters", "8", "--batch_size", "6"]


class Batches(keras.utils.PyDataset):
    """``n`` samples in batches of ``b``: ``x = {"a": (b, 2), "extra": (b, 2)}``, ``y`` the index."""

    def __init__(self, n: int, b: int):
        super().__init__()
        self.x = np.arange(2 * n, dtype="float32").reshape(n, 2)
        self.n, self.b, self.epochs = n, b, 0

    def __len__(self) -> int:
        return -(-self.n // self.b)

    def batch_indices(self, i: int) -> np.ndarray:
        return np.arange(i * self.b, min(self.n, (i + 1) * self.b))

    def __getitem__(self, i: int):
        idx = self.batch_indices(i)
        return {"a": self.x[idx], "extra": self.x[idx]}, idx

    def on_epoch_end(self) -> None:
        self.epochs += 1


# --------------------------------------------------------------------------------------------
# one device: the pieces


def test_the_training_stages_take_distribute_with_none_by_default():
    for cls in (SensorConfig, VideoConfig):
        assert cls().distribute == "none"
        help_text = build_parser(cls).format_help()
        assert "--distribute" in help_text and "global batch" in help_text
        assert cls(distribute="mirrored").distribute == "mirrored"


def test_none_changes_nothing():
    train, val = Batches(7, 3), Batches(5, 3)
    with distribute.distribution("none") as replicas:
        assert replicas is None and distribute.current() is None
        assert distribute.num_replicas() == 1 and distribute.is_chief()
        out = distribute.fit_data(train, val, {"batch_size": 3})
    assert out[0] is train and out[1] is val and out[2] == {"batch_size": 3}


@pytest.mark.backend
def test_predict_arrays_uses_predict_and_matches_calling_the_model():
    inputs = keras.Input((2,), name="a")
    model = keras.Model({"a": inputs}, keras.layers.Dense(3, activation="softmax")(inputs))
    data = Batches(7, 3)
    want = np.concatenate(
        [keras.ops.convert_to_numpy(model({"a": data[i][0]["a"]})) for i in range(len(data))]
    )
    got = predict_arrays(model, data)
    assert got.shape == (7, 3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_the_global_batch_must_split_evenly():
    two = distribute.Replicas("mirrored", "tensorflow", 2, ("cpu:0", "cpu:1"))
    distribute.check_batch_size(8, two)
    with pytest.raises(ConfigError, match=r"--batch_size 7 is the global batch.*multiple of 2"):
        distribute.check_batch_size(7, two)


@pytest.mark.backend
def test_an_option_the_backend_lacks_is_a_config_error(monkeypatch):
    backend = keras.backend.backend()
    other = {"tensorflow": "data_parallel", "jax": "mirrored"}.get(backend, "mirrored")
    with pytest.raises(ConfigError, match=f"--distribute {other}"):
        distribute.resolve(other)
    if backend == "tensorflow":
        monkeypatch.delenv("TF_CONFIG", raising=False)
        with pytest.raises(ConfigError, match="needs the TF_CONFIG"):
            distribute.resolve("multiworker")
    assert distribute.resolve("auto") == "none"  # one device in this process


def test_tf_config_names_the_workers_and_this_one(monkeypatch):
    cluster = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    cfg = {"cluster": cluster, "task": {"type": "worker", "index": 1}}
    assert distribute._tf_workers(cfg) == (2, 1)
    assert distribute._tf_workers({}) == (1, 0)
    with pytest.raises(ConfigError, match="task.type"):
        distribute._tf_workers({"cluster": cluster, "task": {"type": "ps"}})
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not JSON"):
        distribute._tf_config()


@pytest.mark.backend
def test_a_bad_distribute_is_one_line_before_any_run(tmp_path, capsys):
    ck = tmp_path / "ck"
    other = "data_parallel" if keras.backend.backend() == "tensorflow" else "mirrored"
    argv = ["--checkpoints", str(ck), "--distribute", other, "--verbose", "0"]
    assert train_sensor.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --distribute {other}"), err
    assert not ck.exists()


def test_the_stage_decorator_checks_the_batch_and_resume_with_several_workers(monkeypatch):
    workers = distribute.Replicas("multiworker", "tensorflow", 2, ("d0",), 2, 0)

    @contextlib.contextmanager
    def two_workers(option):
        yield workers

    monkeypatch.setattr(distribute, "distribution", two_workers)
    stage = distribute.distributed(lambda cfg: "ran")
    assert stage(SensorConfig(batch_size=8)) == "ran"
    with pytest.raises(ConfigError, match="--batch_size 9 is the global batch"):
        stage(SensorConfig(batch_size=9))
    with pytest.raises(ConfigError, match="--resume with several workers is not supported"):
        stage(SensorConfig(batch_size=8, resume="auto"))


def _as_replicas(monkeypatch, backend: str, n: int = 2, workers: int = 1, index: int = 0):
    replicas = distribute.Replicas("mirrored", backend, n, ("d0", "d1"), workers, index)
    monkeypatch.setattr(distribute, "_active", replicas)


def test_training_batches_are_trimmed_and_no_validation_replica_is_empty(monkeypatch):
    _as_replicas(monkeypatch, "tensorflow")
    train, val, kw = distribute.fit_data(Batches(7, 3), Batches(5, 3), {})
    assert len(train) == 2  # 3, 3 and a last batch of 1 < 2 replicas: skipped
    assert [len(train[i][1]) for i in range(2)] == [2, 2]  # 3 -> 2: one sample skipped
    assert list(train[1][1]) == [3, 4] and list(train[1][0]["a"][:, 0]) == [6.0, 8.0]
    assert [list(val[i][1]) for i in range(len(val))] == [[0, 1, 2], [3, 4]]  # uneven: exact
    _, val, _ = distribute.fit_data(Batches(7, 3), Batches(7, 3), {})
    assert [list(val[i][1]) for i in range(len(val))] == [[0, 1, 2], [3, 4, 5, 6]]  # no empty
    with pytest.raises(ConfigError, match="validation split of 1 samples"):
        distribute.fit_data(Batches(7, 3), Batches(1, 3), {})
    train.on_epoch_end()
    assert train.loader.epochs == 1
    train, _, _ = distribute.fit_data(Batches(8, 4), None, {})
    assert len(train) == 2 and [len(train[i][1]) for i in range(2)] == [4, 4]


def test_arrays_become_batches_that_are_trimmed_too(monkeypatch):
    _as_replicas(monkeypatch, "tensorflow")
    x, y = {"a": np.arange(10.0)[:, None]}, np.arange(10)
    kw = {"y": y, "batch_size": 3, "shuffle": True, "epochs": 2}
    val = ({"a": np.arange(5.0)[:, None]}, np.arange(5))
    train, val, rest = distribute.fit_data(x, val, {**kw, "validation_batch_size": 4})
    assert rest == {"epochs": 2}
    assert len(train) == 3  # 3, 3, 3 trimmed to 2 each; the last batch of 1 skipped
    batches = [train[i] for i in range(3)]
    assert all(len(b[1]) == 2 and np.array_equal(b[0]["a"][:, 0], b[1]) for b in batches)
    assert len(set(np.concatenate([b[1] for b in batches]))) == 6
    assert [list(val[i][1]) for i in range(len(val))] == [[0, 1, 2, 3, 4]]  # 4 + 1: joined


def test_jax_validation_serves_an_uneven_last_batch_first(monkeypatch):
    _as_replicas(monkeypatch, "jax")
    _, val, _ = distribute.fit_data(Batches(8, 4), Batches(9, 4), {})
    assert [list(val[i][1]) for i in range(3)] == [[8], [0, 1, 2, 3], [4, 5, 6, 7]]
    _, even, _ = distribute.fit_data(Batches(8, 4), Batches(10, 4), {})
    assert [list(even[i][1]) for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_padded_prediction_batches_drop_the_copies(monkeypatch):
    _as_replicas(monkeypatch, "jax")
    pad = distribute.ReplicaBatches(Batches(5, 3), 2, mode="pad", targets=False)
    shapes = [pad[i][0]["a"].shape[0] for i in range(2)]
    assert shapes == [4, 2] and len(pad[0]) == 1  # (x,) alone
    out = np.concatenate([pad[i][0]["a"] for i in range(2)])
    np.testing.assert_array_equal(pad.unpad(out), Batches(5, 3).x)


def test_each_jax_process_takes_its_share_of_a_split_batch(monkeypatch):
    _as_replicas(monkeypatch, "jax", n=4, workers=2, index=1)
    train, val, _ = distribute.fit_data(Batches(8, 4), Batches(6, 3), {})
    assert list(train[0][1]) == [2, 3] and list(train[1][1]) == [6, 7]
    assert list(val[0][1]) == [3, 4, 5]  # 3 does not split over 4: replicated, whole, first


def test_tensorflow_strategies_refuse_in_batch_contrast(monkeypatch):
    distribute.require_whole_batch("--method cmc")  # no distribution: fine
    _as_replicas(monkeypatch, "jax")
    distribute.require_whole_batch("--method cmc")  # JAX computes on the global batch
    _as_replicas(monkeypatch, "tensorflow")
    with pytest.raises(ConfigError, match="--method cmc contrasts every sample"):
        distribute.require_whole_batch("--method cmc")


# --------------------------------------------------------------------------------------------
# two devices, in fresh interpreters


def _env(backend: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _two_devices(backend: str, script: str, args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tests" / "stages" / "two_devices.py"), script, *args]
    return subprocess.run(
        cmd, env=_env(backend), capture_output=True, text=True, timeout=900, cwd=REPO
    )


def _run(ck: Path, name: str, stage: str = "sensor") -> dict:
    run = ck / "VSL" / stage / name
    assert (run / "metrics.json").is_file(), f"{run} did not finish"
    return {
        "run": json.loads((run / "run.json").read_text()),
        "metrics": json.loads((run / "metrics.json").read_text()),
        "history": np.genfromtxt(run / "history.csv", delimiter=",", names=True),
        "weights": keras.saving.load_model(run / "best.keras", compile=False).get_weights(),
    }


def _assert_close(one: dict, many: dict) -> None:
    for name in one["history"].dtype.names:
        np.testing.assert_allclose(many["history"][name], one["history"][name], RTOL, ATOL)
    for a, b in zip(one["weights"], many["weights"], strict=True):
        np.testing.assert_allclose(b, a, RTOL, ATOL)
    for split in ("val", "test"):
        assert many["metrics"][split] == one["metrics"][split]
    assert many["metrics"]["best_epoch"] == one["metrics"]["best_epoch"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "option", "extra"),
    [
        # TensorFlow replicas draw dropout masks of their own, so these runs use none
        ("tensorflow", "mirrored", ["--dropout", "0"]),
        # JAX draws the masks of the global batch: the default dropout matches too
        ("jax", "auto", []),
    ],
)
def test_two_devices_train_as_one(backend, option, extra, tiny_dataset, tmp_path):
    """18 training samples in 3 batches of 6; validation and test (9 each) end in a batch of 3,
    which the replicas split unevenly (TensorFlow) or replicate / pad (JAX)."""
    args = [*common(tiny_dataset, tmp_path), *SENSOR, *extra]
    for name, choice in (("one", "none"), ("two", option)):
        done = _two_devices(
            backend, "train_sensor.py", [*args, "--run_name", name, "--distribute", choice]
        )
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = _run(tmp_path, "one"), _run(tmp_path, "two")
    assert "distribute" not in one["run"]  # --distribute none: run.json as before
    info = two["run"]["distribute"]
    assert info["num_replicas"] == 2 and len(info["devices"]) == 2, info
    assert info["backend"] == backend and info["strategy"] == (
        "data_parallel" if backend == "jax" else option
    )
    _assert_close(one, two)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_local_tensorflow_workers_train_as_one_device(tiny_dataset, tmp_path):
    """``--distribute multiworker``: two processes on 127.0.0.1, one CPU device each; the chief
    writes the run, the other worker's copy is removed."""
    args = [*common(tiny_dataset, tmp_path), *SENSOR, "--dropout", "0"]
    script = str(REPO / "train_sensor.py")
    one = subprocess.run(
        [sys.executable, script, *args, "--run_name", "one"],
        env=_env("tensorflow"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = _env("tensorflow", TF_CONFIG=json.dumps(tf_config))
        cmd = [sys.executable, script, *args, "--run_name", "mw", "--distribute", "multiworker"]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    try:
        errors = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errors]
    many = _run(tmp_path, "mw")
    info = many["run"]["distribute"]
    assert info["strategy"] == "multiworker" and info["num_replicas"] == 2, info
    assert info["num_workers"] == 2 and info["worker_index"] == 0
    assert sorted(p.name for p in (tmp_path / "VSL" / "sensor").iterdir()) == [
        "latest",
        "mw",
        "one",
    ]
    _assert_close(_run(tmp_path, "one"), many)


@pytest.mark.slow
def test_pretraining_under_a_tensorflow_strategy_is_one_line(tiny_dataset, tmp_path):
    args = [*common(tiny_dataset, tmp_path), "--distribute", "mirrored", "--batch_size", "4"]
    done = _two_devices("tensorflow", "pretrain_video.py", args)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pretraining (momentum contrast) contrasts every sample"), last
    assert not (tmp_path / "VSL").exists()


@pytest.mark.slow
def test_the_generator_trains_on_two_devices(tiny_dataset, tmp_path):
    """The generator's fits on in-memory embeddings (shared trunk: head and control) and its
    ``predict`` passes on two TensorFlow replicas, from classifiers trained on one device."""
    import train_video

    args = common(tiny_dataset, tmp_path)
    sensor = [*args, "--epoch", "1", "--depth", "2", "--filters", "8", "--run_name", "s"]
    assert train_sensor.main(sensor) == 0
    video = ["--epoch", "1", "--num_frames", "8", "--crop_size", "32", "--batch_size", "4"]
    assert train_video.main([*args, *video, "--run_name", "v"]) == 0
    gen = [*args, "--epoch", "2", "--hidden", "16", "--batch_size", "4", "--run_name", "g"]
    done = _two_devices("tensorflow", "training_generator.py", [*gen, "--distribute", "mirrored"])
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "VSL" / "generator" / "g"
    info = json.loads((run / "run.json").read_text())["distribute"]
    assert info["num_replicas"] == 2 and info["strategy"] == "mirrored"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["val_generated_sensor_accuracy"] <= 1
    assert metrics["control"]["kind"] == "video_head_control"
    assert -1 <= metrics["val_embedding_cosine"] <= 1
