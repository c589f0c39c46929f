"""A tiny processed dataset (VSL layout) on which every stage runs in seconds."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CLASSES = ("left", "right", "still")
SUBJECTS = ("s1", "s2", "s3", "s4")  # s4 is the test subject


def tiny_samples(*, reps: int = 3, frames: int = 10, size: int = 36, steps: int = 40):
    """``(subject, label, rep, video uint8 (T, S, S, 3), sensor float32 (steps, 6))`` of every
    sample: classes differ in the direction a bright square moves; the sensor sees the same
    motion."""
    rng = np.random.default_rng(0)
    for subject in SUBJECTS:
        for label_idx, label in enumerate(CLASSES):
            for rep in range(reps):
                direction = (-1.0, 1.0, 0.0)[label_idx]
                video = rng.integers(0, 40, (frames, size, size, 3), dtype=np.uint8)
                for t in range(frames):
                    x = int(size / 2 + direction * (t - frames / 2) * 1.2)
                    video[t, 14:22, max(0, x - 4) : x + 4] = 220
                t = np.linspace(0, 1, steps)
                sensor = rng.normal(0, 0.1, (steps, 6)).astype(np.float32)
                sensor[:, 0] += direction * np.sin(2 * np.pi * t)
                sensor[:, 3] += (label_idx == 2) * 0.5
                yield subject, label, rep, video, sensor


def write_tiny_dataset(root: Path, **kw) -> Path:
    """The tiny samples in the processed (VSL) layout; s4 is the test split."""
    rows = []
    for subject, label, rep, video, sensor in tiny_samples(**kw):
        rel = f"{subject}/{label}_{rep}.npy"
        for sub, arr in (("video", video), ("sensor", sensor)):
            path = root / sub / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, arr)
        rows.append({"file": rel, "label": label, "subject": subject})
    df = pd.DataFrame(rows)
    df[df.subject != "s4"].to_csv(root / "train.csv", index=False)
    df[df.subject == "s4"].to_csv(root / "test.csv", index=False)
    return root


def write_tiny_video_dataset(root: Path, *, fps: int = 10, **kw) -> Path:
    """The tiny samples as source files in the ``folder`` layout: ``<split>/<label>/<subject>_
    <label>_<rep>.mp4`` (BGR-encoded mp4v) with a sensor CSV beside each (``times`` column in
    seconds at 50 Hz, then six channels); s4 is the test split."""
    import cv2

    for subject, label, rep, video, sensor in tiny_samples(**kw):
        split = "test" if subject == "s4" else "train"
        stem = root / split / label / f"{subject}_{label}_{rep}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        size = (video.shape[2], video.shape[1])
        writer = cv2.VideoWriter(f"{stem}.mp4", cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        table = pd.DataFrame(sensor, columns=["ax", "ay", "az", "gx", "gy", "gz"])
        table.insert(0, "times", np.arange(len(sensor)) / 50.0)
        table.to_csv(f"{stem}.csv", index=False)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))
