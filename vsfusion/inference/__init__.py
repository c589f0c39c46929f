"""Using a trained model outside training: predicting new recordings, running exported models.

* :mod:`vsfusion.inference.predictor`: :class:`Predictor`, a fusion run's deployable models
  with the training cache's preprocessing of their inputs;
* :mod:`vsfusion.inference.exported`: running an ONNX, LiteRT or SavedModel export without Keras;
* :mod:`vsfusion.inference.predict`: ``predict.py``'s stage.

Nothing here imports Keras or TensorFlow at import time: a :class:`Predictor` running an ONNX
export (``engine="onnx"``) predicts without loading a deep-learning framework.
"""

from vsfusion.inference.predictor import (
    DEPLOY_NAME,
    DEPLOY_SENSOR_NAME,
    ENGINES,
    PREDICTOR_NAME,
    Predictor,
    capture_frames,
    predictor_info,
    top_k,
)

__all__ = [
    "DEPLOY_NAME",
    "DEPLOY_SENSOR_NAME",
    "ENGINES",
    "PREDICTOR_NAME",
    "Predictor",
    "capture_frames",
    "predictor_info",
    "top_k",
]
