"""The video backbones by name: one registry that ``--backbone`` and the benchmarks use.

Every backbone has the same trunk contract: a functional model whose input is named after its
modality (``"video"``), takes float clips in ``[0, 255]`` of shape ``(frames, size, size, C)``
with ``C`` 1 (depth) or 3 (RGB), and whose output layer ``embedding`` is ``(B, embed_dim)``. So
the video stage, the generator and fusion take any of them unchanged.

======================  ===========  ==========  ===================================================
name                    embedding    min clip    published reference (multiply-adds, params w/ 400 cls)
======================  ===========  ==========  ===================================================
``i3d``                 1024         8x32x32     108 G at 64x224x224, 12 M (Carreira & Zisserman 2017)
``x3d_xs``              2048         1x32x32     0.60 G at 4x160x160, 3.8 M (Feichtenhofer 2020)
``x3d_s``               2048         1x32x32     1.96 G at 13x160x160, 3.8 M
``r2plus1d_18``         512          1x32x32     40.5 G at 16x112x112, 31.5 M (Tran et al. 2018)
======================  ===========  ==========  ===================================================

``x3d_xs`` and ``x3d_s`` are one architecture; the paper defines them by their clip (4 or 13
frames at 160 px), which is what their entries record as ``reference_clip``. Here the clip comes
from ``--num_frames`` and ``--crop_size``.

Example:
    >>> model = build_backbone("x3d_xs", (4, 64, 64, 3), num_classes=5)
    >>> model.output_shape
    (None, 5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras

from vsfusion.models.i3d import EMBED_DIM as I3D_EMBED_DIM
from vsfusion.models.i3d import MIN_FRAMES as I3D_MIN_FRAMES
from vsfusion.models.i3d import MIN_SIZE as I3D_MIN_SIZE
from vsfusion.models.i3d import build_i3d
from vsfusion.models.r2plus1d import R2PLUS1D_EMBED_DIM, build_r2plus1d_18
from vsfusion.models.x3d import X3D_CLIPS, X3D_EMBED_DIM, build_x3d

__all__ = ["BACKBONES", "BackboneSpec", "backbone_spec", "build_backbone", "check_clip"]


@dataclass(frozen=True)
class BackboneSpec:
    """What the toolkit knows about one video backbone.

    Attributes:
        name: Registry key (the ``--backbone`` value).
        builder: ``builder(input_shape, num_classes=None, dropout=0.5, name=...)``.
        embed_dim: Width of the trunk's ``embedding`` output.
        min_frames: Fewest frames the trunk accepts.
        min_size: Smallest height and width in pixels.
        reference_clip: ``(frames, size)`` of the published compute figures.
        reference_gmacs: Published multiply-adds (G) per clip at ``reference_clip``.
        reference_params_m: Published parameters (M) with a 400-class classifier.
        description: One line for ``--help`` and the README.
    """

    name: str
    builder: Callable[..., keras.Model]
    embed_dim: int
    min_frames: int
    min_size: int
    reference_clip: tuple[int, int]
    reference_gmacs: float
    reference_params_m: float
    description: str


BACKBONES: dict[str, BackboneSpec] = {
    "i3d": BackboneSpec(
        "i3d",
        build_i3d,
        I3D_EMBED_DIM,
        I3D_MIN_FRAMES,
        I3D_MIN_SIZE,
        (64, 224),
        108.0,
        12.0,
        "Inception-v1 I3D (loads Kinetics-style .h5 weights by layer name)",
    ),
    "x3d_xs": BackboneSpec(
        "x3d_xs",
        build_x3d,
        X3D_EMBED_DIM,
        1,
        32,
        X3D_CLIPS["xs"],
        0.60,
        3.76,
        "X3D-XS: depthwise 3-D bottlenecks with squeeze-excitation, ~5x fewer multiply-adds than I3D",
    ),
    "x3d_s": BackboneSpec(
        "x3d_s",
        build_x3d,
        X3D_EMBED_DIM,
        1,
        32,
        X3D_CLIPS["s"],
        1.96,
        3.76,
        "X3D-S: the X3D-XS network, defined for 13-frame clips",
    ),
    "r2plus1d_18": BackboneSpec(
        "r2plus1d_18",
        build_r2plus1d_18,
        R2PLUS1D_EMBED_DIM,
        1,
        32,
        (16, 112),
        40.5,
        31.5,
        "R(2+1)D-18: ResNet-18 with (1x3x3)+(3x1x1) factorised convolutions",
    ),
}


def backbone_spec(backbone: str) -> BackboneSpec:
    """The registry entry of ``backbone``; ``ValueError`` naming the valid choices otherwise.

    Example:
        >>> backbone_spec("x3d_xs").embed_dim
        2048
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[backbone]


def check_clip(backbone: str, input_shape: Sequence[int]) -> None:
    """Raise ``ValueError`` naming the valid choices or the smallest clip the backbone takes.

    Example:
        >>> check_clip("i3d", (4, 56, 56, 3))
        Traceback (most recent call last):
        ...
        ValueError: backbone i3d needs clips of at least 8 frames and 32x32 pixels, got 4x56x56; raise --num_frames / --crop_size
    """
    spec = backbone_spec(backbone)
    frames, height, width, channels = (int(d) for d in input_shape)
    if frames < spec.min_frames or min(height, width) < spec.min_size:
        raise ValueError(
            f"backbone {backbone} needs clips of at least {spec.min_frames} frames and "
            f"{spec.min_size}x{spec.min_size} pixels, got {frames}x{height}x{width}; "
            "raise --num_frames / --crop_size"
        )
    if channels not in (1, 3):
        raise ValueError(f"backbone {backbone} takes 1 (depth) or 3 (RGB) channels, got {channels}")


def build_backbone(
    backbone: str,
    input_shape: Sequence[int],
    num_classes: int | None = None,
    dropout: float = 0.5,
    name: str | None = None,
) -> keras.Model:
    """Build a registered video trunk (or trunk + classifier head) by name.

    Args:
        backbone: A key of :data:`BACKBONES`.
        input_shape: ``(frames, height, width, channels)``.
        num_classes: Classifier head size; None returns the trunk alone.
        dropout: Dropout of the classifier head.
        name: Model name; default the backbone name.

    Returns:
        A functional ``keras.Model`` with input ``"video"`` and, for the trunk, output layer
        ``embedding``.

    Raises:
        ValueError: Unknown name, or a clip the backbone cannot take (message names the minimum).
    """
    check_clip(backbone, input_shape)
    return backbone_spec(backbone).builder(
        tuple(int(d) for d in input_shape),
        num_classes=num_classes,
        dropout=dropout,
        name=name or backbone,
    )
