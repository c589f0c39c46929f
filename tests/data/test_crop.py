"""Person-centred cropping: depth foreground box, RGB motion box, squares, fallback, cache keys."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.io

from vsfusion.data import utd_mhad
from vsfusion.data.cache import Entry, build_cache, cache_key
from vsfusion.data.errors import DataError
from vsfusion.data.video import (
    check_crop,
    crop_box,
    crop_clip,
    foreground_box,
    motion_box,
    square_box,
)


def _depth_clip(t: int = 6) -> np.ndarray:
    """240x320 depth: a person (2.5 m) moving right, a far object (4.5 m), stray near pixels."""
    d = np.zeros((t, 240, 320), np.uint16)
    for k in range(t):
        d[k, 60:200, 140 + 5 * k : 180 + 5 * k] = 2500 + 10 * k
    d[:, 10:60, 250:310] = 4500  # a far object (a table left in the scene)
    return d


def test_foreground_box_contains_person_not_far_object():
    box = foreground_box(_depth_clip())
    top, left, bottom, right = box
    assert top <= 60 and bottom >= 200 and left <= 140 and right >= 205  # all frames' person
    assert right < 250 and top >= 55  # the far object is excluded


def test_foreground_box_unites_frames_and_ignores_stray_pixels():
    d = np.zeros((2, 100, 100), np.uint16)
    d[0, 10:40, 10:30] = 2000
    d[1, 50:90, 60:80] = 2100
    d[1, 95, 0] = 1900  # one stray pixel, nearer than the person
    assert foreground_box(d) == (10, 10, 90, 80)


def test_foreground_box_empty_is_none():
    assert foreground_box(np.zeros((3, 40, 40), np.uint16)) is None


def test_motion_box_moving_square():
    v = np.full((8, 120, 160, 3), 40, np.uint8)
    for k in range(8):
        v[k, 30:60, 20 + 10 * k : 50 + 10 * k] = 220
    top, left, bottom, right = motion_box(v)
    assert 28 <= top <= 32 and 58 <= bottom <= 62
    assert 18 <= left <= 24 and 116 <= right <= 122
    assert motion_box(v[:1]) is None
    assert motion_box(np.full((4, 50, 50, 3), 9, np.uint8)) is None


def test_square_box_margin_clamp_and_padding():
    t, le, b, r = square_box((100, 100, 140, 120), (240, 320), margin=0.1)
    assert b - t == r - le == 48 and t <= 100 and b >= 140
    # Near an edge: shifted inside the frame, not padded.
    assert square_box((0, 0, 40, 20), (240, 320), margin=0.1) == (0, 0, 48, 48)
    # A box taller than the frame's shorter side: centred on it and padded, never squashed.
    t, le, b, r = square_box((0, 10, 240, 300), (240, 320), margin=0.1)
    assert b - t == r - le == 290 and t < 0 and b > 240
    out = crop_box(np.ones((1, 240, 320, 1), np.uint8), (t, le, b, r))
    assert out.shape == (1, 290, 290, 1) and out[0, 0, 100, 0] == 0 and out[0, 100, 100, 0] == 1


def test_crop_clip_person_centres_the_motion():
    v = np.zeros((8, 128, 256, 3), np.uint8)
    for k in range(8):
        v[k, 40:80, 180 + 4 * k : 200 + 4 * k] = 255
    clip, info = crop_clip(v, 64, "person", "x.mp4")
    assert clip.shape == (8, 64, 64, 3) and info["crop"] == "person" and "warning" not in info
    centre, _ = crop_clip(v, 64, "centre")
    assert (clip > 0).mean() > 3 * (centre > 0).mean()


def test_check_crop_names_the_option():
    with pytest.raises(DataError, match="video_crop 'face'"):
        check_crop("face")


def test_cache_key_differs_between_crops():
    centre = cache_key(**utd_mhad.cache_params("depth", "centre"))
    person = cache_key(**utd_mhad.cache_params("depth", "person"))
    assert centre != person
    assert centre == cache_key(**utd_mhad.cache_params("depth"))  # old centre caches stay valid
    assert person != cache_key(**utd_mhad.cache_params("rgb", "person"))


def test_empty_clip_falls_back_with_one_warning(tmp_path, caplog):
    sparse = np.zeros((4, 240, 320), np.uint16)
    sparse[:, 100:105, 150:155] = 2500  # 25 pixels a frame: no person
    paths = []
    for name, d in [("a1_s1_t1", _depth_clip()), ("a1_s1_t2", sparse)]:
        p = tmp_path / f"{name}_depth.mat"
        scipy.io.savemat(p, {"d_depth": np.moveaxis(d, 0, -1)})
        paths.append(p)
    entries = [Entry(p.stem[:-6], "x", "1", "", {"video": str(p)}) for p in paths]
    readers = {"video": utd_mhad.make_readers("depth", "person")["video"]}
    root = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        df = build_cache(entries, root, readers, workers=1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "a1_s1_t2_depth.mat" in warnings[0]
    assert "a1_s1_t1" not in warnings[0]
    assert len(df) == 2  # kept, not dropped
    info = df.attrs["info"]["video"]
    assert info["a1_s1_t1"]["crop"] == "person" and info["a1_s1_t2"]["crop"] == "centre"
    fallback = np.load(df.set_index("id").loc["a1_s1_t2", "video"])
    np.testing.assert_array_equal(fallback, utd_mhad.read_depth(paths[1]))  # the centre crop
    assert fallback.any()
    assert (root / "video.info.json").is_file()
    # A resumed run reads the infos back and warns no more.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = build_cache(entries, root, readers, workers=1)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert again.attrs["info"]["video"] == info


def _fraction(clip: np.ndarray) -> float:
    return float((clip > 0).mean())


def test_real_utd_depth_person_fills_more(shared_data):
    trials = utd_mhad.find_trials(shared_data / "utd-mhad")
    keys = list(trials)[:: max(1, len(trials) // 20)][:20]
    centre, person = [], []
    for k in keys:
        path = trials[k]["depth"]
        centre.append(_fraction(utd_mhad.read_depth(path)))
        clip, info = utd_mhad.read_depth(path, crop="person", with_info=True)
        assert info["crop"] == "person" and clip.shape == (32, 128, 128, 1)
        person.append(_fraction(clip))
    c, p = float(np.mean(centre)), float(np.mean(person))
    logging.getLogger(__name__).info("foreground fraction: centre %.3f, person %.3f", c, p)
    assert p > 1.4 * c  # measured: centre 0.096, person 0.151 (20 trials)
