"""R(2+1)D-18 video trunk (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action
Recognition", CVPR 2018), built from ``keras.layers`` only.

The topology is the 18-layer variant of the reference implementation (torchvision
``r2plus1d_18``): every 3x3x3 convolution of a ResNet-18 is factorised into a ``(1, 3, 3)``
spatial convolution to ``M`` channels, BatchNorm, ReLU and a ``(3, 1, 1)`` temporal convolution,
with ``M = (in * out * 27) // (in * 9 + 3 * out)`` so that the factorised pair has about the
parameters of the 3-D kernel it replaces:

* stem: ``(1, 7, 7)`` convolution to 45 channels with spatial stride 2, BatchNorm, ReLU, then
  ``(3, 1, 1)`` to 64 channels, BatchNorm, ReLU (no pooling);
* four stages of two basic residual blocks with 64, 128, 256 and 512 channels; stages 2-4 halve
  time, height and width in their first block (projection shortcut ``1x1x1`` with stride 2);
* global average pooling: the ``(B, 512)`` output layer ``embedding``.

With a 400-class classifier it has 31.5 M parameters and costs 40.5 GFLOPs (multiply-adds) on a
16x112x112 clip, the published figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from vsfusion.models.heads import trunk_or_classifier

__all__ = ["R2PLUS1D_EMBED_DIM", "R2PLUS1D_WIDTHS", "build_r2plus1d_18", "midplanes"]

#: Output channels of the four residual stages.
R2PLUS1D_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)
#: Width of the trunk's output embedding.
R2PLUS1D_EMBED_DIM = 512
_BN_MOMENTUM = 0.9  # see vsfusion.models.i3d.BN_MOMENTUM
_BN_EPSILON = 1e-5


def midplanes(inplanes: int, planes: int) -> int:
    """Channels between the spatial and the temporal convolution of a (2+1)D unit.

    Example:
        >>> midplanes(64, 64)
        144
    """
    return (inplanes * planes * 27) // (inplanes * 9 + 3 * planes)


def _conv_bn(x, filters: int, kernel, strides, name: str, relu: bool = True):
    x = layers.Conv3D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _conv2plus1d(x, planes: int, mid: int, stride: int, name: str):
    """(1, 3, 3) spatial conv -> BN -> ReLU -> (3, 1, 1) temporal conv (no BN; the block adds it)."""
    x = _conv_bn(x, mid, (1, 3, 3), (1, stride, stride), f"{name}_s")
    return layers.Conv3D(
        planes,
        (3, 1, 1),
        strides=(stride, 1, 1),
        padding="same",
        use_bias=False,
        name=f"{name}_t_conv",
    )(x)


def _basic_block(x, planes: int, stride: int, name: str):
    inplanes = int(x.shape[-1])
    mid = midplanes(inplanes, planes)
    y = _conv2plus1d(x, planes, mid, stride, f"{name}_1")
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=f"{name}_1_bn")(
        y
    )
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv2plus1d(y, planes, mid, 1, f"{name}_2")
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=f"{name}_2_bn")(
        y
    )
    if stride != 1 or inplanes != planes:
        x = _conv_bn(x, planes, 1, stride, f"{name}_down", relu=False)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def build_r2plus1d_18(
    input_shape: Sequence[int] = (16, 112, 112, 3),
    num_classes: int | None = None,
    dropout: float = 0.5,
    name: str = "r2plus1d_18",
    input_name: str = "video",
) -> keras.Model:
    """Builds the R(2+1)D-18 trunk, or the trunk plus a softmax classifier head.

    The input layer is named ``input_name`` and takes float clips in ``[0, 255]`` (rescaled to
    ``[-1, 1]`` inside, layer ``rescale``). The output layer ``embedding`` is ``(B, 512)``.

    Args:
        input_shape: ``(frames, height, width, channels)``; at least 1 frame and 32x32 pixels.
        num_classes: Without it the trunk is returned; with it, trunk (``f"{name}_trunk"``) and
            classifier head (``f"{name}_head"``) composed into one model named ``name``.
        dropout: Dropout rate of the classifier head.
        name: Name of the returned model.
        input_name: Name of the input (the modality key of the batches).

    Returns:
        A functional ``keras.Model``.

    Example:
        >>> build_r2plus1d_18((8, 32, 32, 3), num_classes=5).output_shape
        (None, 5)
    """
    frames, height, width, channels = (int(d) for d in input_shape)
    inputs = keras.Input((frames, height, width, channels), name=input_name)
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = _conv_bn(x, 45, (1, 7, 7), (1, 2, 2), "stem_s")
    x = _conv_bn(x, 64, (3, 1, 1), (1, 1, 1), "stem_t")
    for stage, planes in enumerate(R2PLUS1D_WIDTHS, start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(x, planes, stride, f"layer{stage}_{block}")
    x = layers.GlobalAveragePooling3D(name="embedding")(x)
    return trunk_or_classifier(
        inputs, x, num_classes=num_classes, dropout=dropout, name=name, input_name=input_name
    )
