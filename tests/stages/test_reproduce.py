"""How reproduce.py resolves each stage's configuration."""

import numpy as np
import pytest

from vsfusion.config import ReproduceConfig
from vsfusion.stages.common import StageError
from vsfusion.stages.reproduce import _paired_tests, oof_folds, stage_configs


@pytest.mark.parametrize(
    "stages,expected",
    [
        ("sensor", True),
        ("sensor,video", True),
        ("sensor,generator", False),
        ("sensor,fusion", False),
    ],
)
def test_final_fit_only_when_no_later_stage_needs_validation(stages, expected):
    cfg = ReproduceConfig(dataset="MHAD", stages=stages)
    assert stage_configs(cfg)["sensor"].final_fit is expected
    assert stage_configs(cfg)["video"].final_fit is expected


def test_final_fit_flag_overrides_the_default():
    cfg = ReproduceConfig(dataset="MHAD", stages="sensor,fusion", final_fit=True)
    assert stage_configs(cfg)["sensor"].final_fit is True
    assert stage_configs(cfg)["video"].final_fit is True
    cfg = ReproduceConfig(dataset="MHAD", stages="sensor", final_fit=False)
    assert stage_configs(cfg)["sensor"].final_fit is False


def test_utd_mhad_depth_defaults_to_the_person_crop_in_every_stage():
    configs = stage_configs(ReproduceConfig(dataset="UTD-MHAD"))
    assert {c.video_crop for c in configs.values()} == {"person"}
    assert (configs["video"].crop_size, configs["video"].frame_size) == (64, 80)
    rgb = stage_configs(ReproduceConfig(dataset="UTD-MHAD", video_modality="rgb"))
    assert rgb["video"].video_crop is None  # not validated on RGB: the adapter's centre crop
    given = stage_configs(ReproduceConfig(dataset="UTD-MHAD", video_crop="centre"))
    assert given["generator"].video_crop == "centre"
    paper = stage_configs(ReproduceConfig(dataset="UTD-MHAD", preset="paper"))
    assert (paper["video"].crop_size, paper["video"].frame_size) == (96, None)


@pytest.mark.parametrize(
    "method,trunk",
    [("regress", "shared"), ("privileged", "scratch"), ("cmc", "finetune")],
)
def test_methods_with_their_own_trunk_get_the_video_stages_budget(method, trunk):
    configs = stage_configs(ReproduceConfig(dataset="demo", method=method))
    gen, video = configs["generator"], configs["video"]
    assert (gen.method, gen.trunk) == (method, trunk)
    budget = ("epoch", "patience", "batch_size", "lr")
    same = all(getattr(gen, k) == getattr(video, k) for k in budget)
    assert same is (method != "regress")
    forced = stage_configs(ReproduceConfig(dataset="demo", method="cmc", trunk="scratch"))
    assert forced["generator"].trunk == "scratch"


def test_an_unknown_method_is_one_error_naming_the_choices():
    with pytest.raises(StageError, match="regress, privileged, cmc"):
        stage_configs(ReproduceConfig(dataset="demo", method="distil"))


def test_out_of_fold_runs_default_to_the_presets_and_can_be_turned_off():
    assert oof_folds(ReproduceConfig(dataset="demo")) == 2
    assert oof_folds(ReproduceConfig(dataset="demo", oof_folds=0)) == 0
    assert oof_folds(ReproduceConfig(dataset="demo", oof_folds=-3)) == 0


def _fake_fusion_run(path, labels, correct):
    """A fusion run's predictions.npz where each row is right on the samples ``correct`` marks."""
    k = int(labels.max()) + 1
    probs = {}
    for row, right in correct.items():
        pred = np.where(right, labels, (labels + 1) % k)
        probs[f"probs_{row}"] = np.eye(k, dtype=np.float32)[pred]
    path.mkdir(parents=True)
    np.savez(path / "predictions.npz", labels=labels, subjects=labels.astype(str), **probs)
    return path


def test_paired_tests_pool_every_seeds_predictions(tmp_path):
    labels = np.arange(20) % 4
    runs = []
    for seed in range(3):  # fusion_best right on all, video wrong on 4 per seed, control on 1
        video = np.ones(20, bool)
        video[seed : seed + 4] = False
        control = np.ones(20, bool)
        control[seed] = False
        correct = {"fusion_best": np.ones(20, bool), "video": video}
        correct["video_head_control_fusion"] = control
        runs.append(_fake_fusion_run(tmp_path / f"seed{seed}", labels, correct))
    tests = {tuple(t["pair"]): t for t in _paired_tests(runs)}
    assert set(tests) == {("fusion_best", "video"), ("fusion_best", "video_head_control_fusion")}
    vs_video = tests[("fusion_best", "video")]
    assert (vs_video["n"], vs_video["b"], vs_video["c"]) == (60, 12, 0)
    assert vs_video["p_value"] == pytest.approx(2 * 0.5**12)
    assert tests[("fusion_best", "video_head_control_fusion")]["b"] == 3
