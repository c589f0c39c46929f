"""Model builders: video trunks (I3D, X3D, R(2+1)D), sensor trunks, the skeleton trunk (ST-GCN),
classifier heads, the generator, fusion layers."""

import vsfusion._quiet_backend  # noqa: F401  (before Keras loads TensorFlow)
from vsfusion.models.backbones import (
    BACKBONES,
    BackboneSpec,
    backbone_spec,
    build_backbone,
    check_clip,
)
from vsfusion.models.flops import count_macs
from vsfusion.models.fusion_layers import FUSION_LAYER_RULES, WeightedProbabilityFusion
from vsfusion.models.generator import (
    CrossModalLogits,
    L2Norm,
    Temper,
    build_cmc_model,
    build_control_head,
    build_generated_sensor_model,
    build_generator_head,
    build_generator_training_model,
    build_privileged_model,
    build_source_trunk,
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
from vsfusion.models.losses import SoftTargetCrossentropy, classification_loss, top1_accuracy
from vsfusion.models.r2plus1d import build_r2plus1d_18
from vsfusion.models.sensor import build_inception_time, fit_normalization
from vsfusion.models.stgcn import GraphAggregate, build_stgcn, graph_adjacency
from vsfusion.models.x3d import build_x3d

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "FUSION_LAYER_RULES",
    "CrossModalLogits",
    "GraphAggregate",
    "Temper",
    "build_cmc_model",
    "build_control_head",
    "build_privileged_model",
    "build_source_trunk",
    "SoftTargetCrossentropy",
    "backbone_spec",
    "L2Norm",
    "build_backbone",
    "build_classifier",
    "build_classifier_head",
    "build_generated_sensor_model",
    "build_generator_head",
    "build_generator_training_model",
    "build_i3d",
    "build_inception_time",
    "build_r2plus1d_18",
    "build_stgcn",
    "build_x3d",
    "check_clip",
    "classification_loss",
    "count_macs",
    "call_on_inputs",
    "fit_normalization",
    "generator_loss_weights",
    "generator_losses",
    "graph_adjacency",
    "load_i3d_weights",
    "model_inputs_like",
    "split_classifier",
    "top1_accuracy",
    "WeightedProbabilityFusion",
]
