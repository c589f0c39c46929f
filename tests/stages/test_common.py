"""Shared stage helpers: the learning-rate schedule, the optimizer, epoch selection."""

import csv
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from vsfusion.config import SensorConfig, VideoConfig
from vsfusion.stages.common import (
    StageError,
    fit_with_selection,
    learning_rate,
    load_manifest,
    load_model,
    make_optimizer,
    read_run_config,
    save_model,
)


def test_constant_schedule_is_the_configured_rate():
    assert learning_rate(VideoConfig(lr=3e-4), steps_per_epoch=10) == 3e-4
    assert learning_rate(SensorConfig(lr=2e-3), steps_per_epoch=10) == 2e-3  # no schedule field


def test_cosine_schedule_warms_up_then_decays_to_zero():
    cfg = VideoConfig(lr=1e-3, epoch=10, schedule="cosine", warmup_epochs=2)
    sched = learning_rate(cfg, steps_per_epoch=5)
    lr = [float(keras.ops.convert_to_numpy(sched(step))) for step in range(0, 51)]
    assert lr[0] == pytest.approx(0.0)
    assert lr[5] == pytest.approx(5e-4, rel=1e-4)  # half-way through the 10 warm-up steps
    assert lr[10] == pytest.approx(1e-3, rel=1e-4)  # peak at the end of warm-up
    assert lr[30] == pytest.approx(5e-4, rel=1e-3)  # cosine half-way through the 40 decay steps
    assert lr[50] == pytest.approx(0.0, abs=1e-9)
    assert all(a <= b for a, b in zip(lr[:10], lr[1:11], strict=True))
    assert all(a >= b for a, b in zip(lr[10:50], lr[11:51], strict=True))


def test_unknown_schedule_is_a_stage_error():
    with pytest.raises(StageError, match="use constant or cosine"):
        learning_rate(VideoConfig(schedule="step"), steps_per_epoch=4)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_a_validation_fraction_outside_0_1_is_a_stage_error(fraction, tiny_dataset):
    cfg = SensorConfig(dataset="VSL", data_root=str(tiny_dataset), val_fraction=fraction)
    with pytest.raises(StageError, match=rf"--val_fraction {fraction} must be in \(0, 1\)"):
        load_manifest(cfg)


@pytest.mark.parametrize("text", [None, "stage: [video\n", "- a list\n"])
def test_an_unreadable_run_config_is_a_stage_error(text, tmp_path):
    if text is not None:
        (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(StageError, match="config.yaml") as exc:
        read_run_config(tmp_path)
    assert "\n" not in str(exc.value)


def test_optimizer_follows_the_config():
    sgd = make_optimizer(VideoConfig(lr=0.1, optimizer="sgd"), steps_per_epoch=4)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
    adam = make_optimizer(SensorConfig(lr=2e-3), steps_per_epoch=4)  # no optimizer field: Adam
    assert isinstance(adam, keras.optimizers.Adam)


def test_selection_reports_other_metrics_of_the_chosen_epoch(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    cfg = SensorConfig(epoch=4, patience=4, verbose=0)
    # fit_with_selection writes run.path / "history.csv" and records it for curves.png
    run = SimpleNamespace(path=tmp_path, record_history=lambda *args: None)
    out = fit_with_selection(
        model, x, (x, y), cfg, run, monitor="val_loss", mode="min", report=("val_accuracy",), y=y
    )
    with (tmp_path / "history.csv").open() as handle:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    chosen = next(row for row in history if row["epoch"] == out["best_epoch"])
    assert out["val_loss"] == pytest.approx(min(row["val_loss"] for row in history))
    assert out["val_accuracy"] == pytest.approx(chosen["val_accuracy"])
    assert set(out) == {"best_epoch", "val_loss", "epochs_run", "val_accuracy"}


def test_saved_models_hold_the_weights_without_optimizer_state(tmp_path):
    import h5py

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model.fit(x, np.arange(8) % 3, epochs=2, verbose=0)
    save_model(model, tmp_path)
    with h5py.File(tmp_path / "best.weights.h5") as f:
        assert "optimizer" not in f and "layers" in f
    loaded = load_model(tmp_path / "best.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
