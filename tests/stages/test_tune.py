"""tune.py: the search space, the seeded oracles, a small sensor search on validation only (the
test split's files are never read), best.yaml as the stage's --config, one-line errors."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import tune  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.config import ConfigError, SensorConfig, parse_config  # noqa: E402
from vsfusion.stages.tune import make_oracle, parse_space  # noqa: E402

TEST_SUBJECT = "s4"  # the tiny dataset's test subject (tests/stages/conftest.py)
SMALL = ["--epoch", "2", "--depth", "2", "--filters", "8", "--batch_size", "8"]


# ---------------------------------------------------------------------------------------------
# the space


def test_parse_space_reads_ranges_choices_and_fixed_values_as_the_fields_types():
    params = {
        p.name: p
        for p in parse_space(
            "lr=1e-4:1e-2:log,dropout=0.1:0.6,depth=2|4,filters=8:32:8,augment=false", "sensor"
        )
    }
    assert (params["lr"].kind, params["lr"].low, params["lr"].high, params["lr"].log) == (
        "range",
        1e-4,
        1e-2,
        True,
    )
    assert params["lr"].type is float and not params["dropout"].log
    assert params["depth"].kind == "choice" and params["depth"].values == (2, 4)
    assert params["filters"].candidates() == [8, 16, 24, 32]
    assert params["augment"].kind == "fixed" and params["augment"].values == (False,)
    video = {p.name: p for p in parse_space("crop_size=56|112,backbone=i3d|x3d_xs", "video")}
    assert video["crop_size"].values == (56, 112) and video["backbone"].values == ("i3d", "x3d_xs")


@pytest.mark.parametrize(
    "space,stage,message",
    [
        ("momentum=0.1:0.9", "sensor", "unknown hyper-parameter 'momentum'"),
        ("backbone=i3d", "sensor", "unknown hyper-parameter 'backbone'"),  # a video field
        ("lr=1e-2:1e-4", "sensor", "must be below"),
        ("lr=0:1e-2:log", "sensor", "must be > 0"),
        ("lr=a:b", "sensor", "not a valid float"),
        ("lr=1e-4:1e-2:often", "sensor", "third part"),
        ("lr=1:2:3:4", "sensor", "a range is"),
        ("dropout=0.2:1.5", "sensor", "must be in [0, 1)"),
        ("depth=2.5:4", "sensor", "not a valid int"),
        ("lr", "sensor", "not NAME=SPEC"),
        ("lr=", "sensor", "not NAME=SPEC"),
        ("lr=1e-3,,dropout=0.1", "sensor", "empty entry"),
        ("", "sensor", "empty entry"),
        ("lr=1e-3,lr=1e-2", "sensor", "twice"),
        ("backbone=i3d|resnet", "video", "not one of"),
        ("backbone=i3d:x3d_xs", "video", "give choices"),
        ("trunk=gru", "stream", "not one of"),
    ],
)
def test_bad_spaces_are_one_line_config_errors(space, stage, message):
    with pytest.raises(ConfigError) as info:
        parse_space(space, stage)
    text = str(info.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_the_same_seed_and_space_give_the_same_trials(tuner, tmp_path):
    """The oracle alone, fed a fixed score per trial: its proposals depend on the seed only."""
    import keras_tuner as kt

    space = parse_space("lr=1e-4:1e-2:log,dropout=0.0:0.6,depth=2|3|4", "sensor")

    def proposals(seed: int, name: str) -> list[dict]:
        oracle = make_oracle(tuner, space, 5, seed, max_epochs=4)
        oracle._set_project_dir(str(tmp_path), name)
        out = []
        for _ in range(5):
            trial = oracle.create_trial("tuner0")
            if trial.status != kt.engine.trial.TrialStatus.RUNNING:
                break
            values = dict(trial.hyperparameters.values)
            out.append(values)
            score = values["dropout"] - abs(np.log10(values["lr"]) + 3)
            oracle.update_trial(trial.trial_id, {"val_accuracy": score})
            trial.status = kt.engine.trial.TrialStatus.COMPLETED
            oracle.end_trial(trial)
        return out

    first, again, other = proposals(0, "a"), proposals(0, "b"), proposals(7, "c")
    assert len(first) == 5 and first == again
    assert first != other


# ---------------------------------------------------------------------------------------------
# the command line


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--space", "momentum=0.1:0.9"], "unknown hyper-parameter"),
        (["--space", "lr=1e-2:1e-4"], "must be below"),
        (["--space", "lr=1e-4:"], "not a valid float"),
        (["--trials", "0"], "at least 1 trial"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_no_run(
    flags, message, tiny_dataset, tmp_path, capsys
):
    code = tune.main(["--stage", "sensor", *common(tiny_dataset, tmp_path), *SMALL, *flags])
    assert code == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "VSL" / "tune").exists()


def test_cli_without_a_stage_is_one_line_exit_2(capsys):
    assert tune.main(["--trials", "3"]) == 2
    assert "--stage is required" in _one_error_line(capsys)


@pytest.mark.parametrize("argv", [["--stage", "audio"], ["--stage", "sensor", "--tuner", "grid"]])
def test_an_unknown_stage_or_tuner_is_argparses_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        tune.main(argv)
    assert info.value.code == 2
    assert "invalid choice" in _one_error_line(capsys)


def test_a_space_empty_after_the_constraints_is_one_line_exit_2(tiny_dataset, tmp_path, capsys):
    """No backbone takes 16- or 24-pixel crops: nothing to search, and nothing is written."""
    args = ["--stage", "video", *common(tiny_dataset, tmp_path), "--num_frames", "8"]
    code = tune.main([*args, "--space", "lr=1e-3:1e-2:log,crop_size=16|24"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "search space is empty" in line and "crop_size" in line
    assert not (tmp_path / "VSL" / "tune").exists()


# ---------------------------------------------------------------------------------------------
# a small search of the sensor stage, with the test split's files booby-trapped


@pytest.fixture(scope="module")
def guarded_search(tiny_dataset, tmp_path_factory):
    """Three random trials of the sensor stage while any read of a test-subject file, and any
    prediction, raises; returns the run folder and the files read."""
    import vsfusion.stages.classifiers as classifiers
    import vsfusion.stages.common as stage_common

    ck = tmp_path_factory.mktemp("ck")
    read: list[str] = []
    real_load = np.load

    def guarded_load(path, *args, **kwargs):
        if f"/{TEST_SUBJECT}/" in str(path):
            raise AssertionError(f"the search read a test file: {path}")
        read.append(str(path))
        return real_load(path, *args, **kwargs)

    def no_prediction(*args, **kwargs):
        raise AssertionError("the search predicted")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "load", guarded_load)
        mp.setattr(classifiers, "evaluate_classifier", no_prediction)
        mp.setattr(stage_common, "predict_arrays", no_prediction)
        mp.setattr(classifiers, "predict_arrays", no_prediction)
        with pytest.raises(AssertionError, match="test file"):  # the guard is live
            np.load(next(Path(tiny_dataset).glob(f"sensor/{TEST_SUBJECT}/*.npy")))
        argv = ["--stage", "sensor", *common(tiny_dataset, ck), *SMALL]
        argv += ["--trials", "3", "--tuner", "random", "--run_name", "t"]
        argv += ["--space", "lr=1e-4:1e-2:log,dropout=0.0:0.6"]
        assert tune.main(argv) == 0
    return ck / "VSL" / "tune" / "sensor" / "t", read, argv


def _trials(run: Path) -> list[dict]:
    with open(run / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_search_never_touches_the_test_split_and_writes_its_run(guarded_search):
    run, read, _ = guarded_search
    assert read and not any(f"/{TEST_SUBJECT}/" in p for p in read)
    for name in ("config.yaml", "run.json", "metrics.json", "trials.csv", "trials.md", "best.yaml"):
        assert (run / name).is_file(), name
    assert (run / "keras_tuner" / "oracle.json").is_file()
    assert not list(run.parent.glob(".*incomplete"))
    assert (run.parent / "latest").read_text().strip() == "t"
    assert yaml.safe_load((run / "config.yaml").read_text())["stage"] == "tune_sensor"
    rows = _trials(run)
    assert [r["status"] for r in rows] == ["completed"] * 3
    for r in rows:
        assert 1e-4 <= float(r["lr"]) <= 1e-2 and 0.0 <= float(r["dropout"]) <= 0.6
        assert 0.0 <= float(r["val_accuracy"]) <= 1.0 and 1 <= int(r["best_epoch"]) <= 2
        assert float(r["seconds"]) > 0
        assert (run / "trials" / f"trial_{r['trial']}.csv").is_file()
    assert len({r["lr"] for r in rows}) == 3  # three different configurations
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trials"] == metrics["completed"] == 3
    assert "test" not in metrics and "n_test" not in metrics
    best = max(float(r["val_accuracy"]) for r in rows)
    assert metrics["best"]["val_accuracy"] == pytest.approx(best)


@pytest.mark.slow
def test_best_yaml_is_the_best_trial_as_the_sensor_stage_config(guarded_search):
    run, _, _ = guarded_search
    metrics = json.loads((run / "metrics.json").read_text())
    row = next(r for r in _trials(run) if r["trial"] == metrics["best"]["trial"])
    raw = yaml.safe_load((run / "best.yaml").read_text())
    assert raw["stage"] == "sensor" and isinstance(raw["lr"], float)
    assert isinstance(raw["dropout"], float) and raw["run_name"] is None
    cfg = parse_config(SensorConfig, ["--config", str(run / "best.yaml")])  # train_sensor.py's
    assert cfg.lr == float(row["lr"]) and cfg.dropout == float(row["dropout"])  # exact
    assert (cfg.epoch, cfg.depth, cfg.filters, cfg.batch_size) == (2, 2, 8, 8)
    assert cfg.lr == metrics["best"]["values"]["lr"]


@pytest.mark.slow
def test_the_same_seed_repeats_the_search(guarded_search, tmp_path):
    run, _, argv = guarded_search
    again = [a if a != str(run.parents[3]) else str(tmp_path) for a in argv]
    assert tune.main(again) == 0
    first, second = _trials(run), _trials(tmp_path / "VSL" / "tune" / "sensor" / "t")
    assert [(r["lr"], r["dropout"]) for r in first] == [(r["lr"], r["dropout"]) for r in second]


@pytest.mark.slow
def test_hyperband_trains_each_trial_for_its_budget(tiny_dataset, tmp_path):
    argv = ["--stage", "sensor", *common(tiny_dataset, tmp_path), *SMALL, "--epoch", "3"]
    argv += ["--trials", "3", "--tuner", "hyperband", "--run_name", "h"]
    argv += ["--space", "lr=1e-3:1e-2:log", "--no-tensorboard"]
    assert tune.main(argv) == 0
    run = tmp_path / "VSL" / "tune" / "sensor" / "h"
    rows = _trials(run)
    assert len(rows) == 3 and all(1 <= int(r["epochs"]) <= 3 for r in rows)
    assert all(int(r["epochs_run"]) <= int(r["epochs"]) for r in rows)
    metrics = json.loads((run / "metrics.json").read_text())
    best = next(r for r in rows if r["trial"] == metrics["best"]["trial"])
    cfg = parse_config(SensorConfig, ["--config", str(run / "best.yaml")])
    assert cfg.epoch == int(best["epochs"])
