"""Shared stage helpers: the learning-rate schedule."""

import keras
import pytest

from vsfusion.config import SensorConfig, VideoConfig
from vsfusion.stages.common import StageError, learning_rate


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
