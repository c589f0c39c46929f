"""The baselines stage: run directory, LOSO on training subjects only, skipped modalities, errors,
and the baseline rows in reproduce's results tables."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import reproduce  # noqa: E402
import train_baselines  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.evaluation.report import build_results  # noqa: E402
from vsfusion.stages import baselines as stage  # noqa: E402

FAST = ["--n_trees", "20", "--n_jobs", "1"]


@pytest.fixture(scope="module")
def baselines_run(tiny_dataset, tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    seen: list[np.ndarray] = []
    real = stage.select_by_loso

    def spy(x, y, groups, candidates, **kw):
        seen.append(np.asarray(groups))
        return real(x, y, groups, candidates, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(stage, "select_by_loso", spy)
    try:
        assert train_baselines.main([*common(tiny_dataset, ck), *FAST, "--run_name", "b"]) == 0
    finally:
        mp.undo()
    return ck / "VSL" / "baselines" / "b", seen


def test_stage_writes_a_complete_run_with_both_rows(baselines_run):
    run, _ = baselines_run
    for f in ("config.yaml", "run.json", "metrics.json"):
        assert (run / f).is_file(), f
    assert (run.parent / "latest").read_text().strip() == "b"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["accuracy"]) == {"baseline_sensor", "baseline_video"}
    assert metrics["seconds"] > 0 and json.loads((run / "run.json").read_text())["seconds"] > 0
    video = metrics["streams"]["baseline_video"]
    assert video["features"] == "motion_images"  # the tiny dataset is RGB
    assert metrics["streams"]["baseline_sensor"]["features"] == "summary_statistics"
    for row, info in metrics["streams"].items():
        assert info["model"] in info["families"]
        assert 0.0 <= info["loso_accuracy"] <= 1.0
        assert (
            0.0 <= metrics["accuracy"][row] <= 1.0
            and info["test"]["top1"] == (metrics["accuracy"][row])
        )
        assert info["n_fit"] == 27 and info["n_test"] == 9
    # the tiny sensor classes are easy: the floor is well above chance (1/3)
    assert metrics["accuracy"]["baseline_sensor"] > 0.6


def test_loso_uses_only_non_test_subjects(baselines_run):
    run, seen = baselines_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["fit_splits"] == ["train", "val"]
    assert metrics["fit_subjects"] == ["s1", "s2", "s3"] and metrics["test_subjects"] == ["s4"]
    assert len(seen) == 2  # sensor and video
    for groups in seen:
        assert set(groups.tolist()) == {"s1", "s2", "s3"}  # val subject inside, test never
    for info in metrics["streams"].values():
        assert info["loso_folds"] == ["s1", "s2", "s3"]


def test_missing_modality_skips_its_row(tiny_dataset, tmp_path, monkeypatch, caplog):
    real = stage.load_manifest

    def without_video(cfg):
        manifest = real(cfg)
        manifest.samples["video"] = ""
        return manifest

    monkeypatch.setattr(stage, "load_manifest", without_video)
    ck = tmp_path / "ck"
    with caplog.at_level("INFO", logger="vsfusion.stages.baselines"):
        assert train_baselines.main([*common(tiny_dataset, ck), *FAST, "--run_name", "s"]) == 0
    metrics = json.loads((ck / "VSL" / "baselines" / "s" / "metrics.json").read_text())
    assert set(metrics["streams"]) == {"baseline_sensor"}
    assert any("baseline_video skipped" in r.getMessage() for r in caplog.records)


def test_nan_sensor_is_one_line_error_naming_the_file(tiny_dataset, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    path = root / "sensor" / pd.read_csv(root / "train.csv")["file"].iloc[0]
    arr = np.load(path)
    arr[2, 0] = np.nan
    np.save(path, arr)
    ck = tmp_path / "ck"
    assert train_baselines.main([*common(root, ck), *FAST, "--streams", "sensor"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "NaN" in err[0]
    assert str(path) in err[0] or path.name in err[0]
    stage_dir = ck / "VSL" / "baselines"
    assert not stage_dir.exists() or not any(stage_dir.iterdir())  # no (hidden) partial run


def test_unreadable_video_is_one_line_error(tiny_dataset, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    path = root / "video" / pd.read_csv(root / "train.csv")["file"].iloc[-1]
    path.write_bytes(b"not a npy file")
    code = train_baselines.main([*common(root, tmp_path / "ck"), *FAST, "--streams", "video"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and path.name in err[0] and "re-run preprocessing" in err[0]


def test_bad_streams_option_is_one_line_error(tiny_dataset, tmp_path, capsys):
    code = train_baselines.main([*common(tiny_dataset, tmp_path), "--streams", "depth"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "choose from sensor,video,skeleton" in err[0]
    code = train_baselines.main([*common(tiny_dataset, tmp_path), "--streams", "skeleton"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "none of the modalities ['skeleton']" in err[0]
    assert not list(tmp_path.rglob("*.incomplete"))


def test_reproduce_tables_show_the_baseline_rows(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", "VSL", "--data_root", str(tiny_dataset), "--out", str(out)]
    argv += ["--verbose", "0", "--stages", "baselines", "--seeds", "0,1"]
    assert reproduce.main(argv) == 0
    for seed in (0, 1):
        results = json.loads((out / f"seed{seed}" / "results.json").read_text())
        assert results["accuracy"]["baseline_sensor"] is not None
        assert results["accuracy"]["baseline_video"] is not None
        assert results["accuracy"]["video"] is None
        assert results["extra"]["baselines"]["baseline_video"]["loso_folds"]
        md = (out / f"seed{seed}" / "results.md").read_text()
        assert "| baseline_sensor |" in md and "leave-one-subject-out" in md
    seeds_md = (out / "results_seeds.md").read_text()
    assert "| baseline_video |" in seeds_md and "| baseline_video | — |" not in seeds_md


def test_baselines_merge_into_a_fusion_results_dict():
    from vsfusion.stages.reproduce import _merge_baselines

    fusion = build_results("d", 4, 2, 3, 0, {"video": 0.5, "fusion_sum": 0.6}, {}, 0.3)
    baselines = {
        "accuracy": {"baseline_sensor": 0.7},
        "macro_f1": {"baseline_sensor": 0.65},
        "streams": {
            "baseline_sensor": {
                "features": "summary_statistics",
                "model": "rbf_svm",
                "params": {"svc__C": 10.0},
                "loso_accuracy": 0.8,
                "loso_folds": ["1", "3"],
                "n_fit": 6,
            }
        },
    }
    merged = _merge_baselines(fusion, baselines)
    assert merged["accuracy"]["video"] == 0.5 and merged["accuracy"]["baseline_sensor"] == 0.7
    assert merged["macro_f1"]["baseline_sensor"] == 0.65 and merged["mcnemar_p"] == 0.3
    assert merged["extra"]["baselines"]["baseline_sensor"]["model"] == "rbf_svm"


def test_skeleton_features_are_normalised_joint_statistics(tmp_path):
    """baseline_skeleton: the sensor's statistics over joints x coordinates, after the layout's
    normalisation (so a shifted, scaled copy of a skeleton gets the same features)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 20, 3)).astype(np.float32)
    paths = []
    for k, arr in enumerate((x, 3.0 * x + 5.0)):
        paths.append(str(tmp_path / f"s{k}.npy"))
        np.save(paths[-1], arr)
    rows = pd.DataFrame({"skeleton": paths})
    feats, kind = stage.stream_features(rows, "skeleton", "kinect-v1")
    assert kind == "joint_summary_statistics" and feats.shape[0] == 2
    assert feats.shape[1] == stage.sensor_features(x.reshape(12, -1)).shape[0]
    np.testing.assert_allclose(feats[0], feats[1], rtol=1e-4, atol=1e-4)
    raw, _ = stage.stream_features(rows, "skeleton")  # no layout: no normalisation
    assert not np.allclose(raw[0], raw[1])
    np.save(paths[0], np.zeros((12, 19, 3), np.float32))
    with pytest.raises(stage.DataError, match="s0.npy: skeleton has 19 joints"):
        stage.stream_features(rows, "skeleton", "kinect-v1")
