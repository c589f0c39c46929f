"""The fusion stage: selection on out-of-fold + validation predictions, controls, paired tests."""

import dataclasses
import json
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
from vsfusion.config import ReproduceConfig  # noqa: E402
from vsfusion.stages import reproduce as reproduce_stage  # noqa: E402
from vsfusion.stages.fusion import load_predictions  # noqa: E402

pytestmark = pytest.mark.slow

MAIN = "train=s1,s2 val=s3 test=s4"
FOLDS = {"fold1": "train=s2 val=s3 test=s1", "fold2": "train=s1 val=s3 test=s2"}


def _train(args: list[str], subjects: str, name: str, classifiers: str | None = None) -> Path:
    """A generator run named ``name`` on the ``subjects`` splits, on the sensor and video runs
    named ``classifiers`` (trained here, on the same splits, when None)."""
    run = [*args, "--subjects", subjects, "--run_name", name]
    if classifiers is None:
        classifiers = name
        assert train_sensor.main([*run, "--epoch", "2", "--depth", "3", "--filters", "8"]) == 0
        video = ["--epoch", "1", "--num_frames", "8", "--crop_size", "32", "--batch_size", "4"]
        assert train_video.main([*run, *video]) == 0
    ck = Path(args[args.index("--checkpoints") + 1]) / "VSL"
    generator = [
        *run,
        "--epoch",
        "1",
        "--hidden",
        "16",
        "--model_path",
        str(ck / "sensor" / classifiers),
        "--video_model_path",
        str(ck / "video" / classifiers),
    ]
    assert training_generator.main(generator) == 0
    return ck / "generator" / name


@pytest.fixture(scope="module")
def oof_fusion(tiny_dataset, tmp_path_factory):
    """A fusion run that selects on out-of-fold + validation predictions.

    To keep it fast (tracing a tiny I3D's training step costs most of a video run), the fold
    generators reuse the main run's sensor and video classifiers instead of training their own
    on the fold's subjects (reproduce.py --oof_folds retrains them): the fusion stage only needs
    the fold generators' predictions on their held-out subjects, which is what these tests check.
    """
    ck = tmp_path_factory.mktemp("ck")
    args = common(tiny_dataset, ck)
    main = _train(args, MAIN, "main")
    folds = [_train(args, spec, name, classifiers="main") for name, spec in FOLDS.items()]
    out = tmp_path_factory.mktemp("out")
    fusion = [*args, "--subjects", MAIN, "--model_path", str(main), "--mlp_epochs", "2"]
    argv = [*fusion, "--oof", ",".join(map(str, folds)), "--run_name", "f", "--out", str(out)]
    assert valid_generator.main(argv) == 0
    return ck / "VSL", out, fusion


def test_selection_pools_out_of_fold_predictions_with_validation(oof_fusion):
    ck, out, _ = oof_fusion
    results = json.loads((out / "results.json").read_text())
    selection = results["extra"]["selection"]
    assert selection["pool"] == "out-of-fold + validation"
    assert selection["pool_groups"] == {"s1": 9, "s2": 9, "s3": 9}  # never the test subject s4
    assert [f["held_out"] for f in selection["folds"]] == [["s1"], ["s2"]]
    assert [f["subjects"] for f in selection["folds"]] == list(FOLDS.values())
    best = selection["generated"]["best"]
    assert results["extra"]["best_fusion"] == f"fusion_{best}"
    assert results["accuracy"]["fusion_best"] == results["accuracy"][f"fusion_{best}"]


def test_the_shared_trunk_control_is_reported_fused_and_tested(oof_fusion):
    ck, out, _ = oof_fusion
    results = json.loads((out / "results.json").read_text())
    assert results["extra"]["control"] == "video_head_control"
    for row in ("video_head_control", "video_head_control_fusion", "sensor", "oracle_fusion"):
        assert 0.0 <= results["accuracy"][row] <= 1.0, row
    assert results["accuracy"]["video_ensemble"] is None
    pairs = [t["pair"] for t in results["extra"]["mcnemar_tests"]]
    assert pairs == [["fusion_best", "video"], ["fusion_best", "video_head_control_fusion"]]
    matrix = results["extra"]["missing_modality"]
    assert list(matrix) == [
        "video only",
        "sensor only",
        "video + real sensor",
        "video + generated sensor",
    ]
    md = (out / "results.md").read_text()
    assert "Missing-modality matrix" in md and "video_head_control_fusion" in md


def test_predictions_and_figures_are_saved_and_linked(oof_fusion):
    ck, out, _ = oof_fusion
    run = ck / "fusion" / "f"
    labels, probs = load_predictions(run)
    results = json.loads((run / "results.json").read_text())
    assert len(labels) == results["n_test"] == 9
    for row, acc in results["accuracy"].items():
        if acc is not None:
            assert np.mean(probs[row].argmax(1) == labels) == pytest.approx(acc), row
    figures = json.loads((out / "results.json").read_text())["extra"]["figures"]
    assert len(figures) == 2
    for name in figures.values():  # links in --out point at the run's PNGs
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "](" in (out / "results.md").read_text()


def test_deploy_keras_alone_reproduces_the_saved_fused_test_predictions(oof_fusion, tiny_dataset):
    import keras

    from vsfusion.config import FusionConfig
    from vsfusion.fusion import RULE_ORDER, FusionSelection
    from vsfusion.stages.classifiers import make_loader
    from vsfusion.stages.common import load_manifest, load_model, predict_arrays, require_modality
    from vsfusion.stages.fusion import build_deploy_model

    ck, out, _ = oof_fusion
    run = ck / "fusion" / "f"
    results = json.loads((run / "results.json").read_text())
    deploy_info = results["extra"]["deploy"]
    assert deploy_info["file"] == "deploy.keras" and (run / "deploy.keras").is_file()
    assert deploy_info["inputs"] == {
        "video": [8, 32, 32, 3]
    }  # video only: what the test split needs
    assert deploy_info["streams"] == ["video", "generated_sensor"]
    selection = results["extra"]["selection"]["generated"]
    assert deploy_info["rule"] == results["extra"]["best_fusion_rule"]
    assert selection["weights"] == {
        "video": selection["weight"],
        "generated_sensor": 1.0 - selection["weight"],
    }

    deploy = keras.saving.load_model(run / "deploy.keras")
    assert [t.name for t in deploy.inputs] == ["video"]
    if selection["best"] != "learned":  # the rule and its weights are in the graph
        config = deploy.get_layer("fusion").get_config()
        assert config["rule"] == selection["best"]
        if selection["best"] == "weighted":
            assert config["weights"] == selection["weights"]
    cfg = FusionConfig(
        dataset="VSL", data_root=str(tiny_dataset), checkpoints=str(ck.parent), subjects=MAIN
    )
    manifest = load_manifest(cfg)
    loader = make_loader(
        require_modality(manifest, "test", "video"),
        manifest,
        "video",
        cfg,
        train=False,
        **deploy_info["clip"],
    )
    labels, probs = load_predictions(run)
    assert np.array_equal(np.asarray(loader.labels), labels)
    got = np.asarray(predict_arrays(deploy, loader), dtype=np.float32)
    np.testing.assert_allclose(got, probs["fusion_best"], atol=1e-6)

    # whichever rule was best: results.json, fused.keras and fusion_mlp.keras rebuild every rule
    choice = FusionSelection(
        **{k: selection[k] for k in ("best", "scores", "weights", "mlp_epochs", "pool", "groups")},
        mlp=load_model(run / "fusion_mlp.keras"),
    )
    fused = load_model(run / "fused.keras")
    for rule in RULE_ORDER:
        model = build_deploy_model(fused, dataclasses.replace(choice, best=rule))
        got = np.asarray(predict_arrays(model, loader), dtype=np.float32)
        np.testing.assert_allclose(got, probs[f"fusion_{rule}"], atol=1e-6, err_msg=rule)


def test_a_fold_that_holds_out_a_non_training_subject_is_one_clear_error(oof_fusion, capsys):
    ck, _, fusion = oof_fusion
    wrong = ck / "generator" / "main"  # its test subject is s4, not a training subject
    argv = [*fusion, "--oof", str(wrong), "--run_name", "bad"]
    assert valid_generator.main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "hold out" in err[-1]
    assert not (ck / "fusion" / "bad").exists()


def test_fold_subjects_hold_out_each_training_subject_group():
    assert reproduce_stage.fold_subjects(["s2", "s1", "s3"], ["s4"], 2) == [
        "train=s2 val=s4 test=s1,s3",
        "train=s1,s3 val=s4 test=s2",
    ]
    assert reproduce_stage.fold_subjects(["10", "9"], ["1"], 5) == [
        "train=10 val=1 test=9",
        "train=9 val=1 test=10",
    ]


def test_reproduce_runs_the_folds_before_fusion_and_passes_them_on(
    tiny_dataset, tmp_path, monkeypatch
):
    calls = []

    def fake(cfg):
        calls.append(cfg)
        return {"extra": {"runs": {"generator": f"{cfg.out}/gen"}}}

    monkeypatch.setattr(reproduce_stage, "run_reproduce", fake)
    cfg = ReproduceConfig(
        dataset="VSL", data_root=str(tiny_dataset), out=str(tmp_path), subjects=MAIN
    )
    configs = reproduce_stage.stage_configs(cfg)
    runs = reproduce_stage._run_folds(cfg, configs)
    assert [c.subjects for c in calls] == ["train=s2 val=s3 test=s1", "train=s1 val=s3 test=s2"]
    assert all(c.stages == "sensor,video,generator" and c.oof_folds == 0 for c in calls)
    assert runs == [f"{tmp_path}/folds/fold1/gen", f"{tmp_path}/folds/fold2/gen"]
    assert reproduce_stage.oof_folds(cfg) == 2
