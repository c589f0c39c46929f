"""Multiply-add counts of Keras models, the "FLOPs" of the video-architecture papers.

Papers on video networks (I3D, R(2+1)D, X3D) report the multiply-adds of the convolutional and
fully connected layers for one clip and call them FLOPs; normalisation, activations, pooling and
bias additions are left out. :func:`count_macs` counts the same, from the layers' static shapes
(no data is run), recursing into nested models. One multiply-add is two floating-point
operations, which is how achieved throughput is compared with a hardware peak (``make bench``).

Example:
    >>> import keras
    >>> inp = keras.Input((4, 8, 8, 3))
    >>> out = keras.layers.Conv3D(2, 3, padding="same", use_bias=False)(inp)
    >>> count_macs(keras.Model(inp, out))  # 4*8*8*2 outputs x 3*3*3*3 multiply-adds
    41472
"""

from __future__ import annotations

import math

import keras

__all__ = ["count_macs", "layer_macs"]


def _elements(shape) -> int:
    """Elements of one sample (batch dimension dropped)."""
    return math.prod(int(d) for d in shape[1:])


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-adds of one call of ``layer`` on one sample (0 for layers that are not counted)."""
    from vsfusion.models.x3d import DepthwiseConv3D, SqueezeExcite3D

    if isinstance(
        layer, DepthwiseConv3D | keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D
    ):
        return _elements(layer.output.shape) * math.prod(layer.kernel_size)
    if isinstance(layer, SqueezeExcite3D):
        return 2 * int(layer.output.shape[-1]) * layer.reduced
    if isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
        in_ch = int(layer.input.shape[-1])
        out = layer.output.shape
        positions = _elements(out) // int(out[-1])
        depthwise = positions * in_ch * layer.depth_multiplier * math.prod(layer.kernel_size)
        return depthwise + positions * in_ch * layer.depth_multiplier * int(out[-1])
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        in_ch = int(layer.input.shape[-1])
        return _elements(layer.output.shape) * math.prod(layer.kernel_size) * in_ch // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return _elements(layer.output.shape) * int(layer.input.shape[-1])
    return 0


def count_macs(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of ``model`` on one sample.

    Args:
        model: A built functional model (nested models are counted through).

    Returns:
        The count as an integer (divide by 1e9 for the papers' "GFLOPs").
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
        else:
            total += layer_macs(layer)
    return total
