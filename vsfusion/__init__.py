"""vsfusion: self-learning video + wearable-sensor fusion for sign-language and action recognition.

Importing the package turns on TensorFlow's oneDNN CPU kernels before TensorFlow loads (see
:mod:`vsfusion.runtime`; ``TF_ENABLE_ONEDNN_OPTS=0`` keeps them off).
"""

from vsfusion import runtime as _runtime

_runtime.configure()

__version__ = "0.1.0"
__all__ = ["__version__"]
