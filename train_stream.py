#!/usr/bin/env python
"""Stage 1c: train a classifier for any sequence stream (skeleton, pose, a registered modality).

Usage: python train_stream.py --dataset UTD-MHAD --stream skeleton
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import StreamConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.classifiers import run_stream

    return run_cli(StreamConfig, run_stream, argv)


if __name__ == "__main__":
    sys.exit(main())
