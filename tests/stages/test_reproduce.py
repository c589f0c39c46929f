"""How reproduce.py resolves each stage's configuration."""

import pytest

from vsfusion.config import ReproduceConfig
from vsfusion.stages.reproduce import stage_configs


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
