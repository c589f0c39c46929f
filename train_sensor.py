#!/usr/bin/env python
"""Stage 1b: train the InceptionTime sensor classifier.

Usage: python train_sensor.py --help
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import SensorConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.classifiers import run_sensor

    return run_cli(SensorConfig, run_sensor, argv)


if __name__ == "__main__":
    sys.exit(main())
