"""Training that survives a kill: the per-epoch backup, ``--resume``, and what is never touched."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from tests.stages.stage_cli import common
from vsfusion.cli import run_cli
from vsfusion.config import SensorConfig, config_to_yaml, parse_config
from vsfusion.stages.common import BestOnValidation, RunDir, StageError, seed_everything
from vsfusion.stages.resume import (
    ArrayBatches,
    config_differences,
    continue_killed,
    lock_run,
    resumable_fit,
    unlock_run,
)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# options


def test_resume_alone_means_the_newest_matching_run_and_is_not_part_of_the_config():
    assert parse_config(SensorConfig, ["--resume"]).resume == "auto"
    assert parse_config(SensorConfig, ["--resume", "ck/x/.r.incomplete"]).resume.endswith(
        "r.incomplete"
    )
    assert parse_config(SensorConfig, ["--resume", "--epoch", "3"]).epoch == 3
    assert parse_config(SensorConfig, []).resume is None
    assert "resume" not in config_to_yaml(SensorConfig(resume="auto"))


def test_config_differences_name_each_option_and_ignore_how_the_run_is_shown():
    saved = SensorConfig(epoch=6, verbose=0, workers=3, checkpoints="a", tensorboard=False)
    import yaml

    saved = yaml.safe_load(config_to_yaml(saved))
    assert config_differences(saved, SensorConfig(epoch=6)) == []
    assert config_differences(saved, SensorConfig(epoch=8, lr=0.1)) == [
        "epoch (run 6, now 8)",
        "lr (run 0.001, now 0.1)",
    ]


# ---------------------------------------------------------------------------------------------
# one fit, interrupted in-process (the state of a fresh process is rebuilt from the seed)


class _Killed(Exception):
    pass


class _Interrupt(keras.callbacks.Callback):
    """Raises after epoch ``at`` (after the backup, which runs before it)."""

    def __init__(self, at: int | None):
        super().__init__()
        self.at, self.epochs_run = at, 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run += 1
        if self.at is not None and epoch + 1 == self.at:
            raise _Killed


def _train(run: RunDir | None, at: int | None = None, epochs: int = 4):
    """A small network with dropout and BatchNorm, Adam on a cosine schedule keyed on steps,
    arrays shuffled per epoch, the epoch chosen on validation: everything a resume must restore."""
    from types import SimpleNamespace

    from vsfusion.stages.common import make_optimizer

    seed_everything(3)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(48, 5)).astype("float32"), rng.integers(0, 3, 48)
    xv, yv = rng.normal(size=(16, 5)).astype("float32"), rng.integers(0, 3, 16)
    inp = keras.Input((5,))
    h = keras.layers.Dense(16, activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.3)(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    data = ArrayBatches(x, y, batch_size=8, seed=random.randrange(2**31))
    sched = SimpleNamespace(lr=1e-2, epoch=epochs, schedule="cosine", warmup_epochs=1)
    loss = "sparse_categorical_crossentropy"
    opt = make_optimizer(sched, len(data))
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])
    best = BestOnValidation(monitor="val_loss", mode="min", patience=100)
    interrupt = _Interrupt(at)

    def fit(extra):
        model.fit(
            data,
            validation_data=(xv, yv),
            epochs=epochs,
            verbose=0,
            callbacks=[best, *extra, interrupt],
        )

    resumable_fit(
        model,
        run,
        "history.csv",
        fit,
        data=(data,),
        state={"selection": best},
        final_epoch=lambda: best.best_epoch,
    )
    return model, best, interrupt.epochs_run


@pytest.mark.backend
def test_an_interrupted_fit_continues_after_its_last_backup_and_ends_as_an_uninterrupted_one(
    tmp_path,
):
    reference, ref_best, _ = _train(None)
    run = RunDir.create(SensorConfig(checkpoints=str(tmp_path), run_name="r"))
    try:
        with pytest.raises(_Killed):
            _train(run, at=2)
        state = json.loads((run.path / "resume" / "history.json").read_text())
        assert state["epochs_done"] == 2 and not state.get("done")
        model, best, epochs_run = _train(run)  # as a fresh process would: seed, build, fit
        assert epochs_run == 2  # epochs 3 and 4 only
        assert [r["epoch"] for r in best.history] == [1, 2, 3, 4]
        assert best.history == ref_best.history and best.best_epoch == ref_best.best_epoch
        for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        # finished: a later attempt skips the fit and restores the selected weights
        again, best_again, epochs_run = _train(run)
        assert epochs_run == 0 and best_again.best_epoch == ref_best.best_epoch
        for a, b in zip(again.get_weights(), reference.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        kept = sorted(p.name for p in (run.path / "resume").glob("*.npz"))
        assert kept == [f"history.e{ref_best.best_epoch:04d}.npz"]
    finally:
        RunDir.discard_incomplete()


def test_array_batches_give_each_epoch_its_own_repeatable_order():
    b = ArrayBatches(np.arange(10), np.arange(10), batch_size=4, seed=1)
    first = np.concatenate([b[i][0] for i in range(len(b))])
    b.on_epoch_end()
    second = np.concatenate([b[i][0] for i in range(len(b))])
    assert sorted(first) == sorted(second) == list(range(10)) and list(first) != list(second)
    b.seek_epoch(0)
    np.testing.assert_array_equal(np.concatenate([b[i][0] for i in range(len(b))]), first)


# ---------------------------------------------------------------------------------------------
# finding the run to resume; what is never touched


def _killed_run(tmp_path: Path, name: str = "r", **options) -> Path:
    """A run folder as a SIGKILL leaves it (created, not finished, no live process)."""
    run = RunDir.create(SensorConfig(checkpoints=str(tmp_path), run_name=name, **options))
    RunDir._open.remove(run)
    unlock_run(run.lock)
    return run.path


def _one_error_line(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def _argv(tmp_path: Path, *more: str) -> list[str]:
    return ["--checkpoints", str(tmp_path), "--verbose", "0", *more]


def _create(cfg):
    RunDir.create(cfg)


def test_resume_with_nothing_to_resume_is_one_line(tmp_path, capsys):
    assert run_cli(SensorConfig, _create, _argv(tmp_path, "--resume")) == 2
    line = _one_error_line(capsys)
    assert (
        line.startswith("error: --resume: no killed sensor run under") and "drop --resume" in line
    )


def test_resume_names_the_options_that_differ(tmp_path, capsys):
    folder = _killed_run(tmp_path, epoch=6)
    assert run_cli(SensorConfig, _create, _argv(tmp_path, "--resume", "--epoch", "8")) == 2
    line = _one_error_line(capsys)
    assert "differs in epoch (run 6, now 8)" in line and f"--config {folder}/config.yaml" in line
    assert folder.is_dir()  # a failed --resume leaves the killed run as it was
    try:  # the command the message suggests resumes it
        argv = ["--config", f"{folder}/config.yaml", "--resume", str(folder), "--verbose", "0"]
        assert run_cli(SensorConfig, _create, argv) == 0
        assert json.loads((folder / "run.json").read_text())["resumed"] == 1
    finally:
        RunDir.discard_incomplete()
    assert folder.is_dir()


def test_resume_takes_the_newest_matching_killed_run_and_records_it(tmp_path):
    now = time.time()
    for name, epoch, age in (("a", 6, 60), ("b", 6, 30), ("c", 9, 0)):  # c: another config
        folder = _killed_run(tmp_path, name, epoch=epoch)
        for p in (folder / "run.json", folder):
            os.utime(p, (now - age, now - age))
    run = RunDir.create(SensorConfig(checkpoints=str(tmp_path), epoch=6, resume="auto"))
    try:
        assert run.path.name == ".b.incomplete" and run.final.name == "b" and run.resumed
        info = json.loads((run.path / "run.json").read_text())
        assert info["resumed"] == 1 and info["resume_points"][0]["fits"] == {}
    finally:
        RunDir.discard_incomplete()
    assert run.path.is_dir()  # an error in a resumed run keeps it for the next --resume


def test_a_killed_run_is_not_deleted_by_a_new_run_of_its_name(tmp_path, capsys):
    folder = _killed_run(tmp_path)
    assert run_cli(SensorConfig, _create, _argv(tmp_path, "--run_name", "r")) == 2
    assert f"continue it with --resume {folder}" in _one_error_line(capsys)
    assert folder.is_dir()
    cfg = continue_killed(SensorConfig(checkpoints=str(tmp_path), run_name="r"))
    assert cfg.resume == str(folder)  # what reproduce.py does when run again
    with pytest.raises(StageError, match="killed sensor run with other options \\(epoch"):
        continue_killed(SensorConfig(checkpoints=str(tmp_path), run_name="r", epoch=3))


def test_a_run_being_written_is_not_resumed(tmp_path, capsys):
    folder = _killed_run(tmp_path)
    handle = lock_run(folder)  # as the live process holds it
    try:
        assert run_cli(SensorConfig, _create, _argv(tmp_path, "--resume", str(folder))) == 2
        assert "is being written by a running process" in _one_error_line(capsys)
    finally:
        unlock_run(handle)


def test_a_finished_run_is_never_resumed_or_touched(tmp_path, capsys):
    run = RunDir.create(SensorConfig(checkpoints=str(tmp_path), run_name="done"))
    run.finish({"val_accuracy": 1.0})
    before = {p: p.read_bytes() for p in run.final.rglob("*") if p.is_file()}
    assert not (run.final / "resume").exists()
    for target in (str(run.final), "auto"):
        argv = _argv(tmp_path, "--run_name", "done", "--resume", target)
        assert run_cli(SensorConfig, _create, argv) == 2
        line = _one_error_line(capsys)
        assert "finished run" in line or "no killed sensor run named done" in line, line
    assert {p: p.read_bytes() for p in run.final.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------------------------
# a real stage, SIGKILLed in a subprocess and resumed


def _run_until(argv: list[str], marker: Path, epochs: int, timeout: float = 300) -> dict:
    """Run a stage script, SIGKILL it once ``marker`` (a fit's backup state) shows ``epochs``
    finished epochs, and return that state as the killed process left it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and time.time() < deadline:
            try:
                if json.loads(marker.read_text())["epochs_done"] >= epochs:
                    proc.send_signal(signal.SIGKILL)
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.time() >= deadline:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    return json.loads(marker.read_text())


def _weights(path: Path) -> list[np.ndarray]:
    out = []
    with h5py.File(path) as f:
        f.visititems(lambda _, obj: out.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.graph  # compared with the killed runs' processes, which trace
@pytest.mark.slow
def test_a_killed_sensor_run_resumes_twice_and_ends_as_an_uninterrupted_one(tiny_dataset, tmp_path):
    import train_sensor

    # seed 1: the epoch chosen on validation is the 7th of 8 (the final fit's length)
    flags = ["--depth", "3", "--filters", "8", "--epoch", "8", "--patience", "100"]
    flags += ["--seed", "1", "--final_fit", "--no-tensorboard"]
    args = [*common(tiny_dataset, tmp_path), *flags]
    assert train_sensor.main([*args, "--run_name", "ref"]) == 0
    ref = tmp_path / "VSL" / "sensor" / "ref"
    killed = tmp_path / "VSL" / "sensor" / ".k.incomplete"
    script = str(REPO / "train_sensor.py")

    # killed in the selection fit after epoch 3, then in the final fit after its epoch 1
    first = _run_until([script, *args, "--run_name", "k"], killed / "resume" / "history.json", 3)
    assert not first.get("done")
    marker = killed / "resume" / "history_final_fit.json"
    second = _run_until([script, *args, "--resume"], marker, 1)
    assert (
        not second.get("done")
        and second["epochs_done"]
        < json.loads((ref / "metrics.json").read_text())["final_fit"]["epochs"]
    )
    done = subprocess.run(
        [sys.executable, script, *args, "--resume"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]

    run = tmp_path / "VSL" / "sensor" / "k"
    assert not killed.exists() and not (run / "resume").exists()
    for name in (
        "history.csv",
        "history_final_fit.csv",
    ):  # every epoch once, 1..N, as uninterrupted
        assert (run / name).read_text() == (ref / name).read_text(), name
    metrics, ref_metrics = (json.loads((r / "metrics.json").read_text()) for r in (run, ref))
    metrics.pop("seconds"), ref_metrics.pop("seconds")
    assert metrics == ref_metrics
    for a, b in zip(
        _weights(run / "best.weights.h5"), _weights(ref / "best.weights.h5"), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    info = json.loads((run / "run.json").read_text())
    assert info["resumed"] == 2
    points = [p["fits"] for p in info["resume_points"]]
    assert points[0] == {"history.csv": first["epochs_done"]}
    assert points[1] == {"history.csv": "done", "history_final_fit.csv": second["epochs_done"]}
    # one backup per epoch over the three attempts: no finished epoch was trained twice
    assert info["backup"]["epochs"] == metrics["epochs_run"] + metrics["final_fit"]["epochs"]


@pytest.mark.graph  # compared with the killed runs' processes, which trace
@pytest.mark.slow
def test_a_generator_killed_in_its_control_fit_resumes_to_the_uninterrupted_result(
    tiny_dataset, tmp_path
):
    """The shared-trunk generator: its head fit finished before the kill (skipped on resume, its
    selected weights restored), its control fit (another seed, shuffled embedding arrays) is
    continued after its last backup."""
    import train_sensor
    import train_video
    import training_generator

    args = common(tiny_dataset, tmp_path)
    assert train_sensor.main([*args, "--epoch", "2", "--depth", "3", "--filters", "8"]) == 0
    video = ["--epoch", "1", "--num_frames", "8", "--crop_size", "32", "--batch_size", "4"]
    assert train_video.main([*args, *video]) == 0
    gen = [*args, "--epoch", "30", "--patience", "100", "--hidden", "16", "--batch_size", "4"]
    assert training_generator.main([*gen, "--run_name", "ref"]) == 0
    ref = tmp_path / "VSL" / "generator" / "ref"
    killed = tmp_path / "VSL" / "generator" / ".k.incomplete"
    script = str(REPO / "training_generator.py")

    state = _run_until(
        [script, *gen, "--run_name", "k"], killed / "resume" / "history_control.json", 3
    )
    assert json.loads((killed / "resume" / "history.json").read_text())["done"]
    done = subprocess.run(
        [sys.executable, script, *gen, "--resume"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "VSL" / "generator" / "k"
    for name in ("history.csv", "history_control.csv"):
        assert (run / name).read_text() == (ref / name).read_text(), name
    metrics, ref_metrics = (json.loads((r / "metrics.json").read_text()) for r in (run, ref))
    metrics.pop("seconds"), ref_metrics.pop("seconds")
    assert metrics == ref_metrics
    for stem in ("generator_head", "control_head"):
        pairs = zip(
            _weights(run / f"{stem}.weights.h5"), _weights(ref / f"{stem}.weights.h5"), strict=True
        )
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
    fits = json.loads((run / "run.json").read_text())["resume_points"][0]["fits"]
    assert fits == {"history.csv": "done", "history_control.csv": state["epochs_done"]}
