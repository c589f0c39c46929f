#!/usr/bin/env python
"""Stage 0: classical scikit-learn baselines (sensor statistics, depth motion maps / motion images),
chosen by leave-one-subject-out on the training subjects and reported on test.

Usage: python train_baselines.py --help
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import BaselinesConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.baselines import run_baselines

    return run_cli(BaselinesConfig, run_baselines, argv)


if __name__ == "__main__":
    sys.exit(main())
