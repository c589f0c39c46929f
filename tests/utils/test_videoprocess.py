"""videoprocess: parallel, resumable, atomic folder preprocessing; corrupt files reported."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsfusion.data import io as vio
from vsfusion.data.video import process_folder

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


def test_process_folder_parallel_resumable(src, tmp_path):
    dst = tmp_path / "out"
    res = process_folder(src, dst, num_frames=8, size=32, workers=2)
    assert res.done == ["s1/bye_0.npy", "s1/hello_0.npy", "s2/hello_0.npy"]
    assert list(res.failed) == ["s2/corrupt.avi"]
    assert "corrupt.avi" in res.failed["s2/corrupt.avi"]
    for rel in res.done:
        clip = np.load(dst / "video" / rel)
        assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8
    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert files == ["video/s1/bye_0.npy", "video/s1/hello_0.npy", "video/s2/hello_0.npy"]
    # Temporal sampling: the grey level follows the sampled frame indices.
    grey = np.load(dst / "video/s1/hello_0.npy").mean(axis=(1, 2, 3))
    assert np.all(np.diff(grey) > 0)

    again = process_folder(src, dst, num_frames=8, size=32, workers=2)
    assert again.done == [] and len(again.skipped) == 3 and list(again.failed) == ["s2/corrupt.avi"]


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
