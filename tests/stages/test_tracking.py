"""Training visible while it runs: TensorBoard event files in every training run (unless
``--no-tensorboard``), ``curves.png`` at the end, and logging that never fails a run."""

import logging
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train_sensor  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.config import SensorConfig, parse_config  # noqa: E402
from vsfusion.stages import tracking  # noqa: E402
from vsfusion.stages.common import tracking_callbacks  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--depth", "1", "--filters", "4", "--epoch", "2", "--batch_size", "8"]


def _events(folder: Path) -> list[Path]:
    return sorted(folder.rglob("events.out.tfevents.*"))


def _scalars(event_file: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of an event file, read with TensorFlow's own reader."""
    tf = pytest.importorskip("tensorflow")
    out: dict[str, list[tuple[int, float]]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
        for value in event.summary.value:
            number = (
                tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
            )
            out.setdefault(value.tag, []).append((event.step, float(number)))
    return out


def _ours(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vsfusion.stages.tracking"]


def _tiny_fit(callbacks, epochs=2):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_split=0.25, epochs=epochs, verbose=0, callbacks=callbacks)


@pytest.mark.backend
def test_epoch_scalars_are_written_as_tensorboard_reads_them(tmp_path):
    callback = tracking.tensorboard_callback(tmp_path / "tb")
    assert callback is not None
    _tiny_fit([callback])
    train, val = _events(tmp_path / "tb" / "train"), _events(tmp_path / "tb" / "validation")
    assert len(train) == 1 and len(val) == 1
    if isinstance(callback, tracking.EpochScalars):  # keras's own callback writes its own tags
        scalars = _scalars(train[0])
        assert [s for s, _ in scalars["epoch_loss"]] == [0, 1]  # steps count epochs from 0
        assert {"epoch_accuracy", "epoch_learning_rate"} <= set(scalars)
        assert scalars["epoch_learning_rate"][0][1] == pytest.approx(1e-3)
        assert {"epoch_loss", "epoch_accuracy"} == set(_scalars(val[0]))


def test_no_tensorflow_is_one_warning_and_no_callback(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tracking, "_summary_module", lambda: None)
    monkeypatch.setattr(tracking, "_warned", False)
    cfg = SensorConfig(checkpoints=str(tmp_path))
    run = type("Run", (), {"path": tmp_path})()
    with caplog.at_level(logging.WARNING, logger="vsfusion.stages.tracking"):
        assert tracking_callbacks(cfg, run) == []
        assert tracking_callbacks(cfg, run, "history_control.csv") == []
    warnings = _ours(caplog)
    assert len(warnings) == 1 and "TensorBoard" in warnings[0]


def test_a_failing_writer_is_one_warning_and_training_goes_on(tmp_path, monkeypatch, caplog):
    class Broken:
        def create_file_writer(self, path):
            raise OSError(f"disk full writing {path}")

    monkeypatch.setattr(tracking, "_warned", False)
    callback = tracking.EpochScalars(tmp_path / "tb", Broken())
    with caplog.at_level(logging.WARNING, logger="vsfusion.stages.tracking"):
        _tiny_fit([callback], epochs=3)
    assert callback.failed
    warnings = _ours(caplog)
    assert len(warnings) == 1 and "disk full" in warnings[0]


def test_a_failing_keras_callback_is_one_warning_and_training_goes_on(monkeypatch, caplog):
    class Boom(keras.callbacks.Callback):
        calls = 0

        def on_epoch_end(self, epoch, logs=None):
            Boom.calls += 1
            raise RuntimeError("no tensorboard plugin")

    monkeypatch.setattr(tracking, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="vsfusion.stages.tracking"):
        _tiny_fit([tracking.NeverFails(Boom(), "tb")], epochs=3)
    warnings = _ours(caplog)
    assert Boom.calls == 1 and len(warnings) == 1 and "no tensorboard plugin" in warnings[0]


def test_tensorboard_flag_is_on_by_default_and_can_be_turned_off():
    assert parse_config(SensorConfig, []).tensorboard is True
    assert parse_config(SensorConfig, ["--no-tensorboard"]).tensorboard is False


@pytest.mark.slow
def test_sensor_run_has_tensorboard_events_and_curves(tiny_dataset, tmp_path):
    args = [*common(tiny_dataset, tmp_path), *TINY]
    assert train_sensor.main([*args, "--run_name", "tb", "--final_fit"]) == 0
    run = tmp_path / "VSL" / "sensor" / "tb"
    assert _events(run / "tensorboard" / "train") and _events(run / "tensorboard" / "validation")
    assert _events(run / "tensorboard" / "final_fit" / "train")  # the refit logs too
    assert not (run / "tensorboard" / "final_fit" / "validation").exists()
    assert (run / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert (run / "history_final_fit.csv").read_text().startswith("epoch,accuracy,loss")
    assert not list(tmp_path.rglob("*.incomplete*"))  # the event files moved with the run

    assert train_sensor.main([*args, "--run_name", "off", "--no-tensorboard"]) == 0
    off = tmp_path / "VSL" / "sensor" / "off"
    assert not (off / "tensorboard").exists()
    assert (off / "curves.png").read_bytes()[:8] == PNG_MAGIC
