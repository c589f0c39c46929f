"""vsfusion: self-learning video + wearable-sensor fusion for sign-language and action recognition."""

__version__ = "0.1.0"
__all__ = ["__version__"]
