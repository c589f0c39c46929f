"""videoprocess: folder preprocessing through build_cache (parallel, resumable, atomic); corrupt
files reported."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsfusion.data import io as vio
from vsfusion.data.errors import DataError
from vsfusion.data.processed import load_processed, make_split_csvs, prepare_videos

REPO = Path(__file__).resolve().parents[2]


def write_mp4(path: Path, n_frames: int = 15, hw=(36, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (hw[1], hw[0]))
    for k in range(n_frames):
        w.write(np.full((*hw, 3), 10 * k, np.uint8))
    w.release()


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "raw"
    write_mp4(root / "s1" / "hello_0.mp4")
    write_mp4(root / "s1" / "bye_0.MP4", n_frames=5)
    write_mp4(root / "s2" / "hello_0.mp4", hw=(48, 36))
    (root / "s2" / "notes.txt").write_text("not a video")
    (root / "s2" / "corrupt.avi").write_bytes(b"\x00\x01garbage" * 500)
    return root


def test_prepare_videos_parallel_resumable(src, tmp_path, monkeypatch):
    dst = tmp_path / "out"
    res = prepare_videos(src, dst, num_frames=8, size=32, workers=2)
    assert sorted(res["id"]) == ["s1/bye_0", "s1/hello_0", "s2/hello_0"]
    assert list(res.attrs["failed"]) == ["s2/corrupt"]
    assert "corrupt.avi" in res.attrs["failed"]["s2/corrupt"]
    for rel in ("s1/bye_0", "s1/hello_0", "s2/hello_0"):
        clip = np.load(dst / "video" / f"{rel}.npy")
        assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8
    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert files == [
        "manifest.csv",
        "modalities.json",
        "video/s1/bye_0.npy",
        "video/s1/hello_0.npy",
        "video/s2/hello_0.npy",
    ]
    # Temporal sampling: the grey level follows the sampled frame indices.
    grey = np.load(dst / "video/s1/hello_0.npy").mean(axis=(1, 2, 3))
    assert np.all(np.diff(grey) > 0)

    def boom(*args, **kwargs):
        raise AssertionError("a finished clip was decoded again")

    monkeypatch.setattr(vio.np, "save", boom)  # resumed: only the corrupt file is retried
    again = prepare_videos(src, dst, num_frames=8, size=32, workers=1)
    assert list(again.attrs["failed"]) == ["s2/corrupt"] and len(again) == 3


def test_output_is_a_processed_layout(src, tmp_path):
    dst = tmp_path / "out"
    prepare_videos(src, dst, num_frames=4, size=16, workers=1)
    make_split_csvs(dst, label_regex=r"/(?P<label>[a-z]+)_", test_subjects=["s2"],
                    subject_regex=r"^(s\d)/")  # fmt: skip
    m = load_processed(dst, "mine", val_fraction=0)
    assert sorted(m.samples["subject"]) == ["s1", "s1", "s2"]
    assert set(m.split("test")["subject"]) == {"s2"}


def test_foreign_manifest_is_not_overwritten(src, tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "manifest.csv").write_text("file,label,subject\nx.npy,a,s1\n")
    with pytest.raises(DataError, match=r"manifest\.csv: exists and is not a preparation manifest"):
        prepare_videos(src, dst, workers=1)


def test_atomic_save_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "video" / "x.npy"

    def broken_save(f, arr, **kw):
        f.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(vio.np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        vio.atomic_save_npy(target, np.zeros(3))
    assert list(target.parent.iterdir()) == []


def test_cli_as_script(src, tmp_path):
    dst = tmp_path / "cli"
    cmd = [sys.executable, "utils/videoprocess.py", str(src), str(dst), "--num-frames", "4",
           "--size", "24", "--workers", "2"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr  # the corrupt file is a reported failure
    assert "corrupt.avi" in res.stderr
    assert np.load(dst / "video/s2/hello_0.npy").shape == (4, 24, 24, 3)
    assert not list(dst.rglob("*.tmp")) and not (dst / "video/s2/corrupt.npy").exists()
