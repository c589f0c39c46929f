#!/usr/bin/env python
"""Stage 3: evaluate late fusion of video and generated sensor streams on the test split.

Writes into the run directory ``results.json`` / ``results.md``, ``predictions.npz``,
``fused.keras`` (video in; both streams out) and ``deploy.keras``, the whole predictor: video in,
fused class probabilities out, with the chosen rule and weights (or the learned MLP) in the graph.
``keras.saving.load_model("deploy.keras")`` after ``import vsfusion.models`` loads it. When the
validation split has sensor recordings, ``deploy_sensor.keras`` is the same for video + real
sensor; ``predictor.json`` says how to read new recordings (``python predict.py``).

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
