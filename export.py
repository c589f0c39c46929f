#!/usr/bin/env python
"""Export a trained model (a run folder or a .keras file) to SavedModel, ONNX or LiteRT.

The export is checked against Keras on clips of the run's validation split before it is written.

Usage:
    python export.py checkpoints/<dataset>/fusion/<run> --format onnx
    python export.py checkpoints/<dataset>/video/latest --format litert --quantize dynamic
    python export.py RUN --format savedmodel --out exported/ --force
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import ExportConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.export import run_export

    return run_cli(ExportConfig, run_export, argv)


if __name__ == "__main__":
    sys.exit(main())
