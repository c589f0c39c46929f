"""Sensor validation, anti-aliased resampling by normalised time, and CSV reading."""

import numpy as np
import pytest

from vsfusion.data.errors import DataError
from vsfusion.data.sensor import read_sensor_csv, resample, validate_sensor


def test_validate_sensor():
    a = validate_sensor(np.ones((5, 3), np.float64), "x.npy")
    assert a.dtype == np.float32 and a.shape == (5, 3)
    assert validate_sensor(np.ones((5, 3), np.int16), "x.npy").dtype == np.float32
    bad = np.zeros((10, 6))
    bad[3:6, 2] = np.nan
    bad[8, 0] = np.inf
    with pytest.raises(DataError) as e:
        validate_sensor(bad, "rec/s01.npy")
    msg = str(e.value)
    assert msg.startswith("rec/s01.npy: ") and "rows 3..5" in msg and "1 more" in msg
    with pytest.raises(DataError, match=r"s\.npy: sensor must be 2-D"):
        validate_sensor(np.zeros((2, 3, 4)), "s.npy")
    with pytest.raises(DataError, match="empty"):
        validate_sensor(np.zeros((0, 3)), "s.npy")
    with pytest.raises(DataError, match="not numeric"):
        validate_sensor(np.array([["a"]]), "s.npy")


def test_resample_keeps_a_slow_sine():
    n, steps = 400, 100
    t = np.linspace(0, 1, n)
    x = np.stack([np.sin(2 * np.pi * 3 * t), np.cos(2 * np.pi * 2 * t)], axis=1)
    y = resample(x, steps)
    assert y.shape == (steps, 2) and y.dtype == np.float32
    tt = np.linspace(0, 1, steps)
    ref = np.stack([np.sin(2 * np.pi * 3 * tt), np.cos(2 * np.pi * 2 * tt)], axis=1)
    assert np.abs(y - ref).max() < 0.05


def test_resample_kills_frequency_above_new_nyquist():
    n, steps = 400, 50
    k = np.arange(n)
    slow = np.sin(2 * np.pi * k / 100)  # 0.01 cycles/sample: kept
    fast = np.sin(2 * np.pi * 0.2 * k)  # new Nyquist is ~0.06 cycles/sample: must vanish
    y = resample((slow + fast)[:, None], steps)[:, 0]
    ref = np.sin(2 * np.pi * np.linspace(0, n - 1, steps) / 100)
    rms = np.sqrt(np.mean((y - ref) ** 2))
    assert rms < 0.06
    assert np.abs(y - ref)[1:-1].max() < 0.1  # the ends carry some filter edge effect
    # Plain interpolation would alias the fast component into the result.
    naive = np.interp(np.linspace(0, n - 1, steps), k, slow + fast)
    assert np.sqrt(np.mean((naive - ref) ** 2)) > 0.5


def test_resample_up_identity_and_edge_cases():
    x = np.arange(5, dtype=np.float32)[:, None]
    assert np.allclose(resample(x, 9)[:, 0], np.arange(9) / 2)
    assert np.array_equal(resample(x, 5), x)
    assert resample(x, 1).shape == (1, 1)
    assert resample(np.ones((1, 3)), 4).shape == (4, 3)
    assert resample(np.random.default_rng(0).normal(size=(12, 2)), 5).shape == (5, 2)


def test_read_sensor_csv(tmp_path):
    p = tmp_path / "watch.csv"
    rows = ["times,x1,y1,z1,x2,y2,z2"] + [f"{0.02 * i:.2f},{i},{-i},0.5,1,2,3" for i in range(10)]
    p.write_text("\n".join(rows) + "\n")
    data, times = read_sensor_csv(p)
    assert data.shape == (10, 6) and data.dtype == np.float32
    assert np.allclose(times[:3], [0, 0.02, 0.04])
    sub, _ = read_sensor_csv(p, columns=["z1", "x1"])
    assert sub.shape == (10, 2) and sub[3].tolist() == [0.5, 3.0]
    with pytest.raises(DataError, match=r"watch\.csv: missing column\(s\) \['q'\]"):
        read_sensor_csv(p, columns=["q"])


def test_read_sensor_csv_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("time,x,y\n0,1,2\n1,oops,3\n")
    with pytest.raises(DataError, match=r"bad\.csv: column 'x' has a non-numeric value at row 1"):
        read_sensor_csv(p)
    p.write_text("time,x,y\n0,1,2\n1,,3\n2,1,1\n")
    with pytest.raises(DataError, match=r"bad\.csv: sensor has NaN/inf values at row 1"):
        read_sensor_csv(p)
    with pytest.raises(DataError, match="not found"):
        read_sensor_csv(tmp_path / "none.csv")
    p.write_text("x,y\n1,2\n3,4\n")
    data, times = read_sensor_csv(p)
    assert times.tolist() == [0.0, 1.0]
