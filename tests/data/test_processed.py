"""The processed layout: a layout made by utils/videoprocess.py keeps its recorded reader."""

import cv2
import numpy as np

from vsfusion.data.processed import load_processed, make_split_csvs, prepare_videos


def test_videoprocess_output_records_how_its_clips_were_read(tmp_path):
    for split, subject in (("train", "p1"), ("train", "p2"), ("test", "p3")):
        for label in ("clap", "wave"):
            path = tmp_path / "raw" / split / label / f"{subject}_{label}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
            for k in range(6):
                w.write(np.full((24, 32, 3), 20 * k, np.uint8))
            w.release()
    dst = tmp_path / "processed"
    prepare_videos(tmp_path / "raw", dst, num_frames=5, size=16, workers=1)
    make_split_csvs(dst, subject_regex=r"(p\d)_")
    manifest = load_processed(dst, val_fraction=0.5)
    reader = manifest.streams["video"].attrs["reader"]
    assert (reader["module"], reader["name"]) == ("vsfusion.data.video", "read_clip")
    assert reader["kwargs"] == {"num_frames": 5, "size": 16}
    assert manifest.streams["video"].kind == "rgb"
