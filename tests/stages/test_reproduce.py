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
def test_sensor_final_fit_only_when_no_later_stage_needs_validation(stages, expected):
    cfg = ReproduceConfig(dataset="MHAD", stages=stages)
    assert stage_configs(cfg)["sensor"].final_fit is expected


def test_final_fit_flag_overrides_the_default():
    cfg = ReproduceConfig(dataset="MHAD", stages="sensor,fusion", final_fit=True)
    assert stage_configs(cfg)["sensor"].final_fit is True
    cfg = ReproduceConfig(dataset="MHAD", stages="sensor", final_fit=False)
    assert stage_configs(cfg)["sensor"].final_fit is False
