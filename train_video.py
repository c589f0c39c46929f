#!/usr/bin/env python
"""Stage 1a: train the I3D video classifier.

Usage: python train_video.py --help
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import VideoConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.classifiers import run_video

    return run_cli(VideoConfig, run_video, argv)


if __name__ == "__main__":
    sys.exit(main())
