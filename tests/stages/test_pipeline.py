"""Every stage script runs on tiny data, writes its run directory, and fails cleanly on bad input."""

import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import reproduce  # noqa: E402
import train_sensor  # noqa: E402
import train_video  # noqa: E402
import training_generator  # noqa: E402
import valid_generator  # noqa: E402
from tests.conftest import graph_mode  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.evaluation import report  # noqa: E402

pytestmark = pytest.mark.slow

STREAMS = set(report.STREAMS)  # the key list itself is checked literally in test_report.py


@pytest.fixture(scope="module")
def pipeline(tiny_dataset, tmp_path_factory):
    """The four stages as the scripts run them (graph mode; most other tests train eagerly)."""
    with graph_mode():
        return _pipeline(tiny_dataset, tmp_path_factory)


def _pipeline(tiny_dataset, tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    args = common(tiny_dataset, ck)
    assert (
        train_sensor.main(
            [*args, "--epoch", "3", "--depth", "3", "--filters", "8", "--run_name", "s"]
        )
        == 0
    )
    assert (
        train_video.main(
            [
                *args,
                "--epoch",
                "1",
                "--num_frames",
                "8",
                "--crop_size",
                "32",
                "--batch_size",
                "4",
                "--run_name",
                "v",
            ]
        )
        == 0
    )
    assert (
        training_generator.main([*args, "--epoch", "3", "--hidden", "16", "--run_name", "g"]) == 0
    )
    out = tmp_path_factory.mktemp("out")
    assert (
        valid_generator.main([*args, "--mlp_epochs", "3", "--run_name", "f", "--out", str(out)])
        == 0
    )
    return ck / "VSL", out


@pytest.mark.parametrize(
    "stage,name", [("sensor", "s"), ("video", "v"), ("generator", "g"), ("fusion", "f")]
)
def test_each_stage_writes_a_complete_run_directory(pipeline, stage, name):
    run = pipeline[0] / stage / name
    for f in ("config.yaml", "run.json", "metrics.json"):
        assert (run / f).is_file(), f
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0 and info["git_revision"]
    assert yaml.safe_load((run / "config.yaml").read_text())["stage"] == stage
    if stage != "fusion":
        assert (run / "best.keras").is_file() and (run / "best.weights.h5").is_file()
        assert (run / "history.csv").read_text().startswith("epoch,")
    assert (pipeline[0] / stage / "latest").read_text().strip() == name
    assert not list(run.glob("*.tmp*")) and not list(run.glob(".*tmp*"))


def test_results_json_has_every_stream(pipeline):
    results = json.loads((pipeline[1] / "results.json").read_text())
    assert set(results["accuracy"]) == STREAMS and set(results["macro_f1"]) == STREAMS
    assert (results["n_train"], results["n_val"], results["n_test"]) == (18, 9, 9)
    deep = {s for s in STREAMS if not s.startswith("baseline_")}
    # Only generators with their own trunk train the video_ensemble control; this run's generator
    # shares the video trunk, so those rows may be absent by design.
    optional = {"video_ensemble", "video_ensemble_fusion"}
    for key in deep - optional:  # the tiny test split has real sensors: all of these are measured
        assert results["accuracy"][key] is not None, key
        assert 0.0 <= results["accuracy"][key] <= 1.0, key
    for key in optional:
        value = results["accuracy"][key]
        assert value is None or 0.0 <= value <= 1.0, key
    for key in STREAMS - deep:  # the baselines stage's rows: merged by reproduce, not by fusion
        assert results["accuracy"][key] is None
    assert 0.0 <= results["mcnemar_p"] <= 1.0
    assert results["extra"]["best_fusion"].startswith("fusion_")
    md = (pipeline[1] / "results.md").read_text()
    assert "fusion_weighted" in md and "oracle_fusion" in md
    fusion_run = pipeline[0] / "fusion" / "f"
    assert (fusion_run / "confusion_video.png").read_bytes()[:4] == b"\x89PNG"
    assert (fusion_run / "fused.keras").is_file()


def test_shared_trunk_fused_model_makes_one_i3d_pass(pipeline):
    from vsfusion.stages.common import load_model

    fused = load_model(pipeline[0] / "fusion" / "f" / "fused.keras")
    trunks = [
        layer
        for layer in fused.layers
        if hasattr(layer, "layers") and any(sub.name == "Mixed_5c" for sub in layer.layers)
    ]
    assert len(trunks) == 1  # video and generated streams share one I3D trunk


def test_generator_without_sensor_run_is_one_clear_error(tiny_dataset, tmp_path, capsys):
    code = training_generator.main(common(tiny_dataset, tmp_path / "ck"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "no finished sensor run" in err[0] and "run that stage first" in err[0]
    assert not (tmp_path / "ck" / "VSL" / "generator").exists()


def test_unreadable_checkpoint_is_one_clear_error(pipeline, tiny_dataset, tmp_path, capsys):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(pipeline[0] / "sensor", ck / "VSL" / "sensor")
    shutil.copytree(pipeline[0] / "video", ck / "VSL" / "video")
    (ck / "VSL" / "sensor" / "s" / "best.keras").write_bytes(b"not a keras file")
    code = training_generator.main(common(tiny_dataset, ck))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "best.keras could not be read" in err[0]
    assert not (ck / "VSL" / "generator").exists()


def test_missing_dataset_is_one_clear_error(tmp_path, capsys):
    code = train_sensor.main(common(tmp_path / "nowhere", tmp_path / "ck"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nowhere" in err[0]
    assert not (tmp_path / "ck").exists()


@pytest.mark.graph  # many small steps: one trace costs less than eager steps
def test_reproduce_runs_a_subset_of_stages(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    argv = [
        "--dataset",
        "VSL",
        "--data_root",
        str(tiny_dataset),
        "--out",
        str(out),
        "--verbose",
        "0",
    ]
    assert reproduce.main([*argv, "--stages", "sensor"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["accuracy"]["sensor"] is not None
    assert results["accuracy"]["video"] is None and results["mcnemar_p"] is None
    # an identical second call reuses the finished run instead of retraining
    before = (out / "checkpoints" / "VSL" / "sensor" / "seed0" / "metrics.json").stat().st_mtime
    assert reproduce.main([*argv, "--stages", "sensor"]) == 0
    assert (
        out / "checkpoints" / "VSL" / "sensor" / "seed0" / "metrics.json"
    ).stat().st_mtime == before


def test_reproduce_rejects_unknown_stage(tiny_dataset, tmp_path, capsys):
    code = reproduce.main(
        [
            "--dataset",
            "VSL",
            "--data_root",
            str(tiny_dataset),
            "--out",
            str(tmp_path),
            "--stages",
            "sensr",
        ]
    )
    assert code == 2 and "unknown stages" in capsys.readouterr().err


def test_generator_with_finetuned_trunk_trains_its_own_trunk(pipeline, tiny_dataset, tmp_path):
    import shutil

    import numpy as np

    from vsfusion.models import split_classifier
    from vsfusion.stages.common import load_model

    ck = tmp_path / "ck"
    for stage in ("sensor", "video"):
        shutil.copytree(pipeline[0] / stage, ck / "VSL" / stage)
    args = [*common(tiny_dataset, ck), "--trunk", "finetune", "--epoch", "1", "--batch_size", "4"]
    assert training_generator.main([*args, "--run_name", "gft", "--hidden", "16"]) == 0
    run = ck / "VSL" / "generator" / "gft"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trunk"] == "finetune" and metrics["epochs_run"] == 1
    trunk = load_model(run / "generator_trunk.keras")
    source, _ = split_classifier(load_model(ck / "VSL" / "video" / "v" / "best.keras"))
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(trunk.get_weights(), source.get_weights(), strict=True)
    ]
    assert any(changed)  # started from the video trunk, then trained on the generator objective


def _corrupt(kind: str, root: Path) -> list[str]:
    """Break a copy of the tiny dataset in one way; return the stage flags that reach the fault."""
    import numpy as np
    import pandas as pd

    train = pd.read_csv(root / "train.csv")
    if kind == "nan_sensor":
        path = root / "sensor" / train["file"].iloc[0]
        arr = np.load(path)
        arr[3:6, 1] = np.nan
        np.save(path, arr)
        return ["sensor"]
    if kind == "wrong_shape":  # a training clip that is 3-D: found only while training
        np.save(root / "video" / train["file"].iloc[-1], np.zeros((10, 36, 36), np.uint8))
        return ["video"]
    if kind == "corrupt_npy":  # a cached training recording cut short (a killed copy, a full disk)
        path = root / "sensor" / train["file"].iloc[0]
        path.write_bytes(path.read_bytes()[:100])
        return ["sensor"]
    if kind == "label_only_in_test":
        test = pd.read_csv(root / "test.csv")
        test.loc[0, "label"] = "jump"
        test.to_csv(root / "test.csv", index=False)
        return ["sensor"]
    if kind == "empty_split":
        pd.read_csv(root / "test.csv").iloc[:0].to_csv(root / "test.csv", index=False)
        return ["sensor"]
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("nan_sensor", "NaN"),
        ("wrong_shape", "(10, 36, 36)"),
        ("corrupt_npy", "not a readable .npy"),
        ("label_only_in_test", "'jump'"),
        ("empty_split", "split 'test' is empty"),
    ],
)
def test_bad_input_is_one_clear_error_and_leaves_no_run(
    kind, message, tiny_dataset, tmp_path, capsys
):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    (stage,) = _corrupt(kind, root)
    ck = tmp_path / "ck"
    argv = [*common(root, ck), "--epoch", "1", "--batch_size", "4"]
    if stage == "sensor":
        code = train_sensor.main([*argv, "--depth", "3", "--filters", "8"])
    else:
        code = train_video.main([*argv, "--num_frames", "8", "--crop_size", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and message in err[0]
    stage_dir = ck / "VSL" / stage
    assert not stage_dir.exists() or not any(stage_dir.iterdir())  # no (hidden) partial run


def _exit_code(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors exit from inside main
        return int(exc.code)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--backbone", "resnet50"], "invalid choice: 'resnet50' (choose from 'i3d', 'x3d_xs'"),
        (["--num_frames", "4"], "backbone i3d needs clips of at least 8 frames and 32x32 pixels"),
        (["--backbone", "x3d_xs", "--crop_size", "24"], "at least 1 frames and 32x32 pixels"),
        (["--backbone", "x3d_xs", "--pretrain", "w.h5"], "drop --pretrain or use --backbone i3d"),
    ],
)
def test_bad_backbone_or_clip_is_one_clear_error(extra, message, tiny_dataset, tmp_path, capsys):
    ck = tmp_path / "ck"
    argv = [*common(tiny_dataset, ck), "--epoch", "1", "--num_frames", "8", "--crop_size", "32"]
    code = _exit_code(train_video.main, [*argv, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and message in err[0], err[0]
    assert not (ck / "VSL" / "video").exists() or not any((ck / "VSL" / "video").iterdir())


def test_light_backbone_runs_through_video_and_generator(tiny_dataset, tmp_path):
    """--backbone x3d_xs with the cosine schedule trains; the fine-tuned generator copies its trunk."""
    ck = tmp_path / "ck"
    args = common(tiny_dataset, ck)
    assert train_sensor.main([*args, "--epoch", "2", "--depth", "3", "--filters", "8"]) == 0
    video = [*args, "--epoch", "2", "--num_frames", "4", "--crop_size", "32", "--batch_size", "4"]
    assert train_video.main([*video, "--backbone", "x3d_xs", "--schedule", "cosine"]) == 0
    run = ck / "VSL" / "video" / (ck / "VSL" / "video" / "latest").read_text().strip()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backbone"] == "x3d_xs" and metrics["input_shape"] == [4, 32, 32, 3]
    machine = json.loads((run / "run.json").read_text())["machine"]
    assert {"cpu_model", "simd", "cpus", "onednn"} <= set(machine)
    assert (
        training_generator.main([*args, "--epoch", "1", "--trunk", "finetune", "--lr", "1e-4"]) == 0
    )
    gen = ck / "VSL" / "generator" / (ck / "VSL" / "generator" / "latest").read_text().strip()
    assert json.loads((gen / "metrics.json").read_text())["backbone"] == "x3d_xs"
    assert (gen / "generator_trunk.keras").is_file()


@pytest.mark.graph  # many small steps: one trace costs less than eager steps
def test_reproduce_over_seeds_writes_each_seed_and_mean_and_sd(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--dataset", "VSL", "--data_root", str(tiny_dataset), "--out", str(out)]
    assert reproduce.main([*argv, "--verbose", "0", "--stages", "sensor", "--seeds", "0,1"]) == 0
    per_seed = [json.loads((out / f"seed{s}" / "results.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in per_seed] == [0, 1]
    agg = json.loads((out / "results_seeds.json").read_text())
    accs = [r["accuracy"]["sensor"] for r in per_seed]
    assert agg["seeds"] == [0, 1] and agg["accuracy"]["sensor"]["n"] == 2
    assert agg["accuracy"]["sensor"]["mean"] == pytest.approx(sum(accs) / 2)
    assert agg["per_seed"]["1"]["sensor"] == accs[1]
    assert "| sensor |" in capsys.readouterr().out  # the mean +- sd table is printed
    assert (out / "results_seeds.md").read_text().startswith("# Results: VSL over 2 seed(s)")


def test_sensor_final_fit_retrains_on_train_and_val_for_the_chosen_epochs(tiny_dataset, tmp_path):
    args = [*common(tiny_dataset, tmp_path), "--depth", "3", "--filters", "8", "--epoch", "3"]
    flags = ["--final_fit", "--label_smoothing", "0.1", "--schedule", "cosine"]
    assert train_sensor.main([*args, *flags, "--run_name", "ff"]) == 0
    metrics = json.loads((tmp_path / "VSL" / "sensor" / "ff" / "metrics.json").read_text())
    assert metrics["final_fit"] == {
        "epochs": metrics["best_epoch"],
        "schedule_epochs": metrics["best_epoch"],
        "n_samples": metrics["n_train"] + metrics["n_val"],
    }
    assert metrics["augment"]["unit_channels"] == 6  # VSL: each watch's acc + gyro turn together
    assert metrics["test"] is not None
    assert train_sensor.main([*args, "--run_name", "plain"]) == 0
    plain = json.loads((tmp_path / "VSL" / "sensor" / "plain" / "metrics.json").read_text())
    assert plain["final_fit"] is None


def test_final_fit_anneals_the_cosine_schedule_at_its_own_last_epoch(
    tiny_dataset, tmp_path, monkeypatch
):
    from vsfusion.stages import classifiers

    real_fit, real_compile = classifiers.fit_with_selection, classifiers._compile
    horizons = []

    def early_best(*args, **kwargs):  # as if validation chose epoch 1 of 4
        return {**real_fit(*args, **kwargs), "best_epoch": 1}

    def compile_and_record(model, cfg, steps_per_epoch):
        horizons.append(cfg.epoch)
        return real_compile(model, cfg, steps_per_epoch)

    monkeypatch.setattr(classifiers, "fit_with_selection", early_best)
    monkeypatch.setattr(classifiers, "_compile", compile_and_record)
    args = [*common(tiny_dataset, tmp_path), "--depth", "1", "--filters", "4", "--epoch", "4"]
    flags = ["--final_fit", "--schedule", "cosine"]
    assert train_sensor.main([*args, *flags, "--run_name", "ff"]) == 0
    metrics = json.loads((tmp_path / "VSL" / "sensor" / "ff" / "metrics.json").read_text())
    assert metrics["final_fit"]["epochs"] == 1
    # selection over the configured 4 epochs; the 1-epoch refit's cosine ends at its own end
    assert horizons == [4, 1]


def test_subjects_override_the_protocol_splits_and_name_an_absent_subject(
    tiny_dataset, tmp_path, capsys
):
    args = [*common(tiny_dataset, tmp_path), "--depth", "1", "--filters", "4", "--epoch", "1"]
    rotated = "train=s2,s3 val=s1 test=s4"
    assert train_sensor.main([*args, "--subjects", rotated, "--run_name", "v1"]) == 0
    run = tmp_path / "VSL" / "sensor" / "v1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (18, 9, 9)
    assert yaml.safe_load((run / "config.yaml").read_text())["subjects"] == rotated
    capsys.readouterr()
    bad = "train=s2,s3 val=s1 test=s9"
    assert train_sensor.main([*args, "--subjects", bad, "--run_name", "v9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "['s9']" in err[0] and "--protocol" in err[0]
    assert not (tmp_path / "VSL" / "sensor" / "v9").exists()


def test_bad_rotation_unit_is_one_clear_error_and_leaves_no_run(tiny_dataset, tmp_path, capsys):
    args = [*common(tiny_dataset, tmp_path), "--epoch", "1", "--unit_channels", "4"]
    assert train_sensor.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--unit_channels" in err[0]
    assert not list(tmp_path.glob("VSL/sensor/*"))


@pytest.mark.parametrize("seeds", ["0,x", "1,1", ","])
def test_reproduce_rejects_bad_seed_lists(seeds, tiny_dataset, tmp_path, capsys):
    argv = ["--dataset", "VSL", "--data_root", str(tiny_dataset), "--out", str(tmp_path / "o")]
    assert reproduce.main([*argv, "--stages", "sensor", "--seeds", seeds]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds" in err[0] and "e.g. 0,1,2" in err[0]
