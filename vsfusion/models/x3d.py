"""X3D video trunks (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition",
CVPR 2020), built from ``keras.layers`` and ``keras.ops`` only.

The topology is the one of the reference implementation (pytorchvideo ``create_x3d``) with width
factor 2.0, depth factor 2.2 and bottleneck factor 2.25, the setting of X3D-XS, -S and -M, which
share one architecture (3.76 M parameters with the Kinetics-400 classifier) and differ only in
the clip they are run on:

* stem: ``(1, 3, 3)`` convolution with spatial stride 2 to 24 channels, then a depthwise ``(5, 1, 1)``
  temporal convolution, BatchNorm, ReLU;
* four residual stages of 3, 5, 11 and 7 bottleneck blocks with 24, 48, 96 and 192 output
  channels; each block is ``1x1x1`` expansion (x2.25) -> depthwise ``3x3x3`` (spatial stride 2 in
  the first block of a stage) -> squeeze-excitation (every other block, ratio 1/16) -> swish ->
  ``1x1x1`` projection, with a projection shortcut where the shape changes, then ReLU;
* head: ``1x1x1`` convolution to 432 channels, BatchNorm, ReLU, global average pooling, a
  bias-free linear layer to 2048 and ReLU: the ``(B, 2048)`` output layer ``embedding``. The
  dropout and classifier of the paper are the shared classifier head
  (:func:`vsfusion.models.heads.build_classifier_head`).

The published clip sizes are ``X3D_CLIPS``: XS 4x160x160 (0.60 GFLOPs, counted as multiply-adds),
S 13x160x160 (1.96 GFLOPs), M 16x224x224 (4.73 GFLOPs). Any clip of at least one frame and 32x32
pixels works. The depthwise 3-D convolution is :class:`DepthwiseConv3D`: under TensorFlow it is
computed as a sum of 2-D depthwise convolutions over the kernel's time taps (TensorFlow's CPU
grouped ``Conv3D`` is about 50x slower), elsewhere as one grouped convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from vsfusion.models.heads import trunk_or_classifier

__all__ = [
    "X3D_CLIPS",
    "X3D_DEPTHS",
    "X3D_EMBED_DIM",
    "X3D_WIDTHS",
    "DepthwiseConv3D",
    "SqueezeExcite3D",
    "build_x3d",
]

#: Blocks per residual stage (depth factor 2.2 applied to 1, 2, 5, 3).
X3D_DEPTHS: tuple[int, int, int, int] = (3, 5, 11, 7)
#: Output channels per residual stage (width factor 2.0).
X3D_WIDTHS: tuple[int, int, int, int] = (24, 48, 96, 192)
#: Width of the trunk's output embedding.
X3D_EMBED_DIM = 2048
#: The clip (frames, crop size) each published X3D model is defined for.
X3D_CLIPS: dict[str, tuple[int, int]] = {"xs": (4, 160), "s": (13, 160), "m": (16, 224)}
_STEM_WIDTH = 24
_BOTTLENECK = 2.25
_HEAD_WIDTH = 432
_SE_RATIO = 0.0625
_BN_MOMENTUM = 0.9  # see vsfusion.models.i3d.BN_MOMENTUM: few steps per epoch on research data
_BN_EPSILON = 1e-5


def _round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """Channel rounding of the reference implementation (multiple of ``divisor``, >= 90%)."""
    width *= multiplier
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def _shift_frames(z, shift: int):
    """``out[:, t] = z[:, t + shift]`` with zeros outside, as a 2-D depthwise convolution over
    (frames, positions) with a one-hot kernel: one pass forward and backward."""
    _, frames, height, width, channels = z.shape
    taps = 2 * abs(shift) + 1
    kernel = ops.reshape(ops.one_hot(abs(shift) + shift, taps, dtype=z.dtype), (taps, 1, 1, 1))
    kernel = ops.tile(kernel, (1, 1, channels, 1))
    flat = ops.reshape(z, (-1, frames, height * width, channels))
    return ops.reshape(ops.depthwise_conv(flat, kernel, padding="same"), ops.shape(z))


@keras.saving.register_keras_serializable(package="vsfusion")
class DepthwiseConv3D(layers.Layer):
    """Depthwise 3-D convolution (one ``kt x kh x kw`` filter per channel), ``same`` padding, no bias.

    Temporal stride is 1 (all X3D models keep the frame rate); the spatial stride may be > 1.

    Args:
        kernel_size: ``(kt, kh, kw)``.
        strides: ``(1, sh, sw)``.

    Example:
        >>> layer = DepthwiseConv3D((3, 3, 3), strides=(1, 2, 2))
        >>> tuple(layer(keras.ops.ones((2, 4, 8, 8, 5))).shape)
        (2, 4, 4, 4, 5)
    """

    def __init__(
        self,
        kernel_size: Sequence[int] = (3, 3, 3),
        strides: Sequence[int] = (1, 1, 1),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        if len(self.kernel_size) != 3 or len(self.strides) != 3 or self.strides[0] != 1:
            raise ValueError(
                f"DepthwiseConv3D needs a 3-d kernel and strides (1, sh, sw), got "
                f"{self.kernel_size} and {self.strides}"
            )

    def build(self, input_shape) -> None:
        channels = int(input_shape[-1])
        kt, kh, kw = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(kt, kh, kw, channels, 1),
            initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal"),
        )

    def call(self, x):
        if keras.backend.backend() != "tensorflow":
            return self.reference_call(x)
        # Under TensorFlow: one 2-D depthwise convolution over (height, width) per time tap, on all
        # frames at once; each tap's result shifted in time by another 2-D depthwise convolution
        # (one-hot kernel over (frames, positions)); the taps summed. Only native depthwise
        # convolutions with one filter per channel, whose gradients TensorFlow computes fast: a
        # grouped Conv3D (~50x), a channel multiplier (~7x) or slicing the frame axis (~3x for the
        # layer, forward and backward) is slower on its CPU kernels.
        kt = self.kernel_size[0]
        _, frames, height, width, channels = x.shape
        flat = ops.reshape(x, (-1, height, width, channels))
        before = (kt - 1) // 2
        out = None
        for m in range(kt):
            z = ops.depthwise_conv(flat, self.kernel[m], strides=self.strides[1:], padding="same")
            z = ops.reshape(z, (-1, frames, *z.shape[1:]))
            shift = m - before  # output frame t takes input frame t + shift
            if shift:
                z = _shift_frames(z, shift)
            out = z if out is None else out + z
        return out

    def reference_call(self, x):
        """The same result as one grouped 3-D convolution (every backend; slow on TF's CPU)."""
        kernel = ops.swapaxes(self.kernel, -1, -2)  # (kt, kh, kw, 1, C): one group per channel
        return ops.conv(x, kernel, strides=self.strides, padding="same")

    def compute_output_shape(self, input_shape):
        b, t, h, w, c = input_shape

        def down(n, s):
            return None if n is None else -(-int(n) // s)

        return (b, t, down(h, self.strides[1]), down(w, self.strides[2]), c)

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides}


@keras.saving.register_keras_serializable(package="vsfusion")
class SqueezeExcite3D(layers.Layer):
    """Squeeze-and-excitation over a 3-D feature map: global mean -> ReLU bottleneck -> sigmoid gate.

    Example:
        >>> tuple(SqueezeExcite3D(8)(keras.ops.ones((2, 3, 4, 4, 16))).shape)
        (2, 3, 4, 4, 16)
    """

    def __init__(self, reduced: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reduced = int(reduced)

    def build(self, input_shape) -> None:
        channels = int(input_shape[-1])
        self.squeeze = layers.Dense(self.reduced, activation="relu", name="squeeze")
        self.excite = layers.Dense(channels, activation="sigmoid", name="excite")
        self.squeeze.build((None, channels))
        self.excite.build((None, self.reduced))

    def call(self, x):
        s = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return x * self.excite(self.squeeze(s))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "reduced": self.reduced}


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _conv1(x, filters: int, name: str, strides: tuple[int, int, int] = (1, 1, 1)):
    return layers.Conv3D(filters, 1, strides=strides, use_bias=False, name=name)(x)


def _block(x, dim_out: int, stride: int, use_se: bool, name: str):
    """One X3D bottleneck block with its residual connection."""
    dim_in = int(x.shape[-1])
    dim_inner = int(_BOTTLENECK * dim_out)
    y = layers.Activation("relu", name=f"{name}_a_relu")(
        _bn(f"{name}_a_bn")(_conv1(x, dim_inner, f"{name}_a"))
    )
    y = DepthwiseConv3D((3, 3, 3), strides=(1, stride, stride), name=f"{name}_b")(y)
    y = _bn(f"{name}_b_bn")(y)
    if use_se:
        y = SqueezeExcite3D(_round_width(dim_inner, _SE_RATIO), name=f"{name}_se")(y)
    y = layers.Activation("swish", name=f"{name}_b_swish")(y)
    y = _bn(f"{name}_c_bn")(_conv1(y, dim_out, f"{name}_c"))
    if dim_in != dim_out or stride != 1:
        x = _bn(f"{name}_shortcut_bn")(
            _conv1(x, dim_out, f"{name}_shortcut", strides=(1, stride, stride))
        )
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def build_x3d(
    input_shape: Sequence[int] = (13, 160, 160, 3),
    num_classes: int | None = None,
    dropout: float = 0.5,
    name: str = "x3d",
    input_name: str = "video",
) -> keras.Model:
    """Builds the X3D trunk (XS/S/M architecture), or the trunk plus a softmax classifier head.

    The input layer is named ``input_name`` and takes float clips in ``[0, 255]``; the model rescales
    them to ``[-1, 1]`` itself (layer ``rescale``). The output layer ``embedding`` is ``(B, 2048)``.

    Args:
        input_shape: ``(frames, height, width, channels)``; at least 1 frame and 32x32 pixels.
            ``X3D_CLIPS`` lists the published clip of each variant.
        num_classes: Without it the trunk is returned; with it, trunk (``f"{name}_trunk"``) and
            classifier head (``f"{name}_head"``) composed into one model named ``name``.
        dropout: Dropout rate of the classifier head.
        name: Name of the returned model.
        input_name: Name of the input (the modality key of the batches).

    Returns:
        A functional ``keras.Model``.

    Example:
        >>> trunk = build_x3d((4, 64, 64, 3))
        >>> trunk.output_shape
        (None, 2048)
    """
    frames, height, width, channels = (int(d) for d in input_shape)
    inputs = keras.Input((frames, height, width, channels), name=input_name)
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv3D(
        _STEM_WIDTH, (1, 3, 3), strides=(1, 2, 2), padding="same", use_bias=False, name="stem_xy"
    )(x)
    x = DepthwiseConv3D((5, 1, 1), name="stem_t")(x)
    x = layers.Activation("relu", name="stem_relu")(_bn("stem_bn")(x))
    for stage, (depth, dim_out) in enumerate(zip(X3D_DEPTHS, X3D_WIDTHS, strict=True), start=2):
        for block in range(depth):
            x = _block(
                x,
                dim_out,
                stride=2 if block == 0 else 1,
                use_se=block % 2 == 0,
                name=f"res{stage}_{block}",
            )
    x = layers.Activation("relu", name="head_relu")(
        _bn("head_bn")(_conv1(x, _HEAD_WIDTH, "head_conv"))
    )
    x = layers.GlobalAveragePooling3D(name="head_pool")(x)
    x = layers.Dense(X3D_EMBED_DIM, use_bias=False, name="head_lin5")(x)
    x = layers.Activation("relu", name="embedding")(x)
    return trunk_or_classifier(
        inputs, x, num_classes=num_classes, dropout=dropout, name=name, input_name=input_name
    )
