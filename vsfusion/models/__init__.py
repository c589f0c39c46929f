"""Model builders: the I3D video trunk, sensor trunks, classifier heads and the generator."""

from vsfusion.models.generator import (
    L2Norm,
    build_generated_sensor_model,
    build_generator_head,
    build_generator_training_model,
    generator_loss_weights,
    generator_losses,
)
from vsfusion.models.heads import (
    build_classifier,
    build_classifier_head,
    call_on_inputs,
    model_inputs_like,
    split_classifier,
)
from vsfusion.models.i3d import build_i3d, load_i3d_weights
from vsfusion.models.sensor import build_inception_time, fit_normalization

__all__ = [
    "L2Norm",
    "build_classifier",
    "build_classifier_head",
    "build_generated_sensor_model",
    "build_generator_head",
    "build_generator_training_model",
    "build_i3d",
    "build_inception_time",
    "call_on_inputs",
    "fit_normalization",
    "generator_loss_weights",
    "generator_losses",
    "load_i3d_weights",
    "model_inputs_like",
    "split_classifier",
]
