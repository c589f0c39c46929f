#!/usr/bin/env python
"""Use a trained model: the top-k classes of a video, a folder of videos or a webcam clip.

Reads each video exactly as the training cache did (the reader and parameters recorded in the
fusion run's predictor.json) and predicts with the run's deploy.keras (video + generated sensor)
or, with --sensor, its deploy_sensor.keras (video + real sensor).

Usage:
    python predict.py clip.mp4 --model checkpoints/<dataset>/fusion/latest [--top_k 5]
    python predict.py videos/ --model checkpoints/<dataset>/fusion/<run> --out predictions.csv
    python predict.py clip.mp4 --sensor clip.csv --model .../deploy.keras --out p.json
    python predict.py 0 --model checkpoints/<dataset>/fusion/latest --seconds 3   # webcam 0
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import PredictConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.inference.predict import run_predict

    return run_cli(PredictConfig, run_predict, argv)


if __name__ == "__main__":
    from vsfusion.runtime import skip_optional_imports

    skip_optional_imports()  # JAX, scikit-learn, matplotlib: TF/Keras load them, unused here
    sys.exit(main())
