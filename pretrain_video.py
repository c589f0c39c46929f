#!/usr/bin/env python
"""Stage 0 (optional): self-supervised pretraining of the video trunk (momentum contrast).

Writes a run whose trunk ``train_video.py --pretrain <run>`` loads.
Usage: python pretrain_video.py --help
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import PretrainConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.pretrain import run_pretrain

    return run_cli(PretrainConfig, run_pretrain, argv)


if __name__ == "__main__":
    sys.exit(main())
