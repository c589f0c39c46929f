"""The generator stage's methods (regress, privileged, cmc) and their controls without sensor."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train_sensor  # noqa: E402
import train_video  # noqa: E402
import training_generator  # noqa: E402
import valid_generator  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.stages.common import load_model  # noqa: E402

pytestmark = pytest.mark.slow

VIDEO = ["--num_frames", "8", "--crop_size", "32", "--batch_size", "4"]


@pytest.fixture(scope="module")
def classifiers(tiny_dataset, tmp_path_factory):
    """Sensor run ``s`` and video run ``v`` of the tiny dataset."""
    ck = tmp_path_factory.mktemp("ck")
    args = common(tiny_dataset, ck)
    sensor = [*args, "--epoch", "2", "--depth", "3", "--filters", "8", "--run_name", "s"]
    assert train_sensor.main(sensor) == 0
    assert train_video.main([*args, "--epoch", "1", *VIDEO, "--run_name", "v"]) == 0
    return ck


def _generator(ck: Path, tiny_dataset: Path, name: str, *extra: str) -> tuple[int, Path]:
    args = [*common(tiny_dataset, ck), "--epoch", "2", "--hidden", "16", "--batch_size", "4"]
    code = training_generator.main([*args, "--run_name", name, *extra])
    return code, ck / "VSL" / "generator" / name


def test_shared_trunk_trains_a_head_control_of_the_generators_size(classifiers, tiny_dataset):
    code, run = _generator(classifiers, tiny_dataset, "g")
    assert code == 0
    info = json.loads((run / "metrics.json").read_text())
    assert info["method"] == "regress" and info["trunk"] == "shared"
    control = info["control"]
    assert control["kind"] == "video_head_control" and control["seed"] == 1000
    assert 1 <= control["best_epoch"] <= 2 and 0 <= control["val_accuracy"] <= 1
    head = load_model(run / "control_head.keras")
    generator = load_model(run / "generator_head.keras")
    out = head.predict(np.zeros((2, head.inputs[0].shape[-1]), "float32"), verbose=0)
    assert set(out) == {"embedding", "probs"}
    assert out["embedding"].shape[1] == generator.outputs[0].shape[-1]  # the generator's size
    assert head.count_params() > generator.count_params()  # plus its softmax layer
    assert out["probs"].shape == (2, 3) and np.allclose(out["probs"].sum(1), 1, atol=1e-5)
    assert not (run / "control_trunk.keras").exists()
    assert (run / "history.csv").is_file() and (run / "history_control.csv").is_file()
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # both histories
    for fit in ("", "control"):  # each fit logs to TensorBoard in a folder of its own
        assert list((run / "tensorboard" / fit / "validation").glob("events.out.tfevents.*"))


def test_no_control_flag_skips_the_control(classifiers, tiny_dataset):
    code, run = _generator(classifiers, tiny_dataset, "g_nc", "--no-control")
    assert code == 0
    assert json.loads((run / "metrics.json").read_text())["control"] is None
    assert not (run / "control_head.keras").exists()


@pytest.fixture(scope="module")
def privileged(classifiers, tiny_dataset):
    code, run = _generator(
        classifiers, tiny_dataset, "gp", "--method", "privileged", "--trunk", "scratch"
    )
    assert code == 0
    return run


def test_privileged_trains_its_own_video_network_and_an_ensemble_control(privileged):
    info = json.loads((privileged / "metrics.json").read_text())
    assert info["method"] == "privileged" and info["trunk"] == "scratch"
    assert 0 <= info["val_class_accuracy"] <= 1
    assert info["control"]["kind"] == "video_ensemble"
    history = (privileged / "history.csv").read_text().splitlines()[0]
    for key in ("kd_loss", "class_probs_loss", "embedding_loss", "val_probs_accuracy"):
        assert key in history
    control_history = (privileged / "history_control.csv").read_text().splitlines()[0]
    assert "val_accuracy" in control_history and "kd_loss" not in control_history
    trunk = load_model(privileged / "generator_trunk.keras")
    control = load_model(privileged / "control_trunk.keras")
    assert trunk.count_params() == control.count_params()  # the same architecture...
    differs = [
        not np.array_equal(a, b)
        for a, b in zip(trunk.get_weights(), control.get_weights(), strict=True)
    ]
    assert any(differs)  # ...trained separately (another seed, no sensor)


def test_fusion_of_an_own_trunk_generator_reports_the_ensemble_control(
    privileged, classifiers, tiny_dataset, tmp_path
):
    args = [*common(tiny_dataset, classifiers), "--model_path", str(privileged)]
    out = tmp_path / "out"
    assert valid_generator.main([*args, "--mlp_epochs", "3", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["extra"]["generator_method"] == "privileged"
    assert results["extra"]["control"] == "video_ensemble"
    for row in ("video_ensemble", "video_ensemble_fusion", "fusion_best"):
        assert results["accuracy"][row] is not None
    assert results["accuracy"]["video_head_control"] is None
    pairs = [t["pair"] for t in results["extra"]["mcnemar_tests"]]
    assert pairs == [["fusion_best", "video"], ["fusion_best", "video_ensemble_fusion"]]


@pytest.mark.graph  # many small steps: one trace costs less than eager steps
def test_cmc_aligns_a_copy_of_the_video_trunk_then_fits_a_head(classifiers, tiny_dataset):
    code, run = _generator(
        classifiers, tiny_dataset, "gc", "--method", "cmc", "--trunk", "finetune", "--no-control"
    )
    assert code == 0
    info = json.loads((run / "metrics.json").read_text())
    assert info["method"] == "cmc" and info["alignment"]["epochs_run"] == 2
    header = (run / "history_alignment.csv").read_text().splitlines()[0]
    assert "cmc_video_loss" in header and "cmc_sensor_loss" in header
    assert "val_probs_accuracy" in (run / "history.csv").read_text().splitlines()[0]
    trunk = load_model(run / "generator_trunk.keras")
    video = load_model(classifiers / "VSL" / "video" / "v" / "best.keras")
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(trunk.get_weights(), video.get_weights(), strict=False)
    )


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--method", "privileged"], "use --trunk scratch or finetune"),
        (["--method", "cmc"], "use --trunk scratch or finetune"),
    ],
)
def test_methods_with_their_own_trunk_reject_a_shared_trunk(
    flags, message, classifiers, tiny_dataset, capsys
):
    code, run = _generator(classifiers, tiny_dataset, "bad", *flags)
    assert code == 2 and message in capsys.readouterr().err
    assert not run.exists()


def test_runs_of_another_class_list_are_one_error_naming_both(
    classifiers, tiny_dataset, tmp_path, capsys
):
    ck = tmp_path / "ck"
    for stage in ("sensor", "video"):
        shutil.copytree(classifiers / "VSL" / stage, ck / "VSL" / stage)
    metrics = ck / "VSL" / "video" / "v" / "metrics.json"
    info = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**info, "classes": info["classes"][:-1]}))
    code, run = _generator(ck, tiny_dataset, "g")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:")
    assert str(ck / "VSL" / "sensor" / "s") in err[0] and str(ck / "VSL" / "video" / "v") in err[0]
    assert f"{len(info['classes']) - 1} other classes" in err[0]
    assert not run.exists()


@pytest.fixture(scope="module")
def cross(classifiers, tiny_dataset):
    """A --from sensor --to video generator run."""
    runs = f"video={classifiers / 'VSL' / 'video' / 'v'},inertial={classifiers / 'VSL' / 'sensor' / 's'}"
    code, run = _generator(
        classifiers, tiny_dataset, "g_sv", "--from", "inertial", "--to", "video", "--runs", runs
    )
    assert code == 0
    return run


def test_from_to_generates_any_stream_from_any_others(cross):
    """--from sensor --to video: the sensor trunk's embeddings learn the video classifier's."""
    run = cross
    info = json.loads((run / "metrics.json").read_text())
    assert info["sources"] == ["sensor"] and info["target"] == "video"
    assert set(info["stream_runs"]) == {"sensor", "video"}
    assert info["stream_options"]["video"]["crop_size"] == 32
    assert info["control"]["kind"] == "head_control"
    model = load_model(run / "best.keras")
    assert [t.name for t in model.inputs] == ["sensor"]
    x = {"sensor": np.zeros((2, 40, 6), "float32")}
    out = model.predict(x, verbose=0)
    assert out["embedding"].shape == (2, info["embed_dim"]) and out["probs"].shape == (2, 3)
    assert 0.0 <= info["val_generated_sensor_accuracy"] <= 1.0


def test_from_to_bad_names_are_one_line_listing_the_streams(classifiers, tiny_dataset, capsys):
    streams = "its streams are video (rgb), sensor (inertial)"
    for extra, says in (
        (("--from", "depth,skeleton", "--to", "inertial"), "--from depth: VSL has no stream"),
        (("--from", "depth,skeleton", "--to", "inertial"), streams),
        (("--to", "thermal"), "--to thermal: VSL has no stream or kind 'thermal'"),
        (("--to", "video", "--from", "sensor", "--runs", "pose=x"), "--runs pose: VSL has no"),
        (("--to", "video", "--from", "sensor", "--runs", "video"), "give stream=RUN pairs"),
        (("--from", "video", "--to", "video"), "the target is not a source"),
        (
            ("--from", "sensor", "--to", "video", "--method", "privileged", "--trunk", "scratch"),
            "only --method regress",
        ),
    ):
        code, run = _generator(classifiers, tiny_dataset, "g_bad", *extra)
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0 and says in err, err
        assert not run.exists()
    assert not list((classifiers / "VSL" / "generator").glob(".*incomplete"))


def test_from_to_fusion_rows_controls_and_deploy(cross, classifiers, tiny_dataset, tmp_path):
    import keras

    import vsfusion.models  # noqa: F401  (registers the fusion layer for loading deploy.keras)
    from vsfusion.data import ClipLoader, load_dataset
    from vsfusion.stages.fusion import load_predictions

    args = [*common(tiny_dataset, classifiers), "--mlp_epochs", "2", "--model_path", str(cross)]
    assert valid_generator.main([*args, "--run_name", "f_sv", "--out", str(tmp_path)]) == 0
    run = classifiers / "VSL" / "fusion" / "f_sv"
    results = json.loads((run / "results.json").read_text())
    acc, extra = results["accuracy"], results["extra"]
    rows = ("sensor", "generated_video", "fusion_sources", "fusion_best", "head_control")
    for row in (*rows, "head_control_fusion", "video", "oracle_fusion"):
        assert 0.0 <= acc[row] <= 1.0, row
    assert extra["sources"] == {"sensor": "inertial"} and extra["target"] == {"video": "rgb"}
    assert [t["pair"] for t in extra["mcnemar_tests"]] == [
        ["fusion_best", "fusion_sources"],
        ["fusion_best", "head_control_fusion"],
    ]
    assert extra["selection"]["pool"] == "validation"
    assert set(extra["selection"]["generated"]["weights"]) == {"sensor", "generated_video"}
    assert extra["deploy"]["inputs"] == {"sensor": [40, 6]}
    assert (tmp_path / "results.md").is_file()
    # deploy.keras: the sources in, fusion_best out, exactly the saved test predictions
    labels, probs = load_predictions(run)
    deploy = keras.saving.load_model(run / "deploy.keras")
    m = load_dataset("VSL", tiny_dataset)
    test = ClipLoader(m.split("test"), m.classes, modalities=("sensor",), batch_size=4)
    np.testing.assert_array_equal(test.labels, labels)
    got = np.concatenate([deploy.predict(test[i][0], verbose=0) for i in range(len(test))])
    np.testing.assert_allclose(got, probs["fusion_best"], atol=1e-6)


def test_aggregate_pools_fusion_runs_over_seeds(cross, classifiers, tiny_dataset, tmp_path):
    import reproduce

    args = [*common(tiny_dataset, classifiers), "--mlp_epochs", "2", "--model_path", str(cross)]
    assert valid_generator.main([*args, "--run_name", "a1", "--seed", "1"]) == 0
    fusion = classifiers / "VSL" / "fusion"
    shutil.copytree(fusion / "a1", fusion / "a2")  # a second "seed" (the same predictions)
    runs = ",".join(str(fusion / n) for n in ("a1", "a2"))
    assert reproduce.main(["--aggregate", runs, "--out", str(tmp_path)]) == 0
    agg = json.loads((tmp_path / "results_seeds.json").read_text())
    assert set(agg["per_seed"]) == {"a1", "a2"}
    pairs = [t["pair"] for t in agg["paired_tests"]]
    assert ["fusion_best", "fusion_sources"] in pairs and [
        "fusion_best",
        "head_control_fusion",
    ] in pairs
    assert "results_seeds.md" in {p.name for p in tmp_path.iterdir()}
