#!/usr/bin/env python
"""Stage 2: train the generator that synthesises the sensor embedding from video.

Usage: python training_generator.py --help
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import GeneratorConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.generator import run_generator

    return run_cli(GeneratorConfig, run_generator, argv)


if __name__ == "__main__":
    sys.exit(main())
