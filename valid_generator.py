#!/usr/bin/env python
"""Stage 3: evaluate late fusion of video and generated sensor streams on the test split.

Usage: python valid_generator.py --help
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import FusionConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.fusion import run_fusion

    return run_cli(FusionConfig, run_fusion, argv)


if __name__ == "__main__":
    sys.exit(main())
