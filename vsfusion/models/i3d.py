"""Inception-v1 Inflated 3D ConvNet (I3D) and a loader for published Keras I3D weight files.

The topology is the one of Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and
the Kinetics Dataset" (CVPR 2017): Inception-v1 with every 2D kernel inflated to 3D. Layer names
follow the widely shared Kinetics-pretrained Keras I3D weight files (the ``keras-kinetics-i3d``
naming), so that those files load by layer name with :func:`load_i3d_weights`:

* a convolution unit ``U`` is ``U_conv`` (Conv3D, no bias) -> ``U_bn`` (BatchNormalization with
  ``scale=False``) -> ``U`` (ReLU), e.g. ``Conv3d_1a_7x7_conv``, ``Conv3d_1a_7x7_bn``,
  ``Conv3d_1a_7x7``;
* inside ``Mixed_3b`` the branches are ``Conv3d_3b_0a_1x1``; ``Conv3d_3b_1a_1x1`` ->
  ``Conv3d_3b_1b_3x3``; ``Conv3d_3b_2a_1x1`` -> ``Conv3d_3b_2b_3x3``; ``MaxPool2d_3b_3a_3x3`` ->
  ``Conv3d_3b_3b_1x1``, concatenated as ``Mixed_3b`` (likewise for 3c, 4b-4f, 5b, 5c).

The trunk ends with the original average pooling (``global_avg_pool``: pool ``(2, 7, 7)``,
stride 1, ``valid``; each pool dimension clipped to the feature map so small inputs work) and a
global average over the remaining positions, the ``(B, 1024)`` output layer ``embedding``. The
Kinetics logits layer ``Conv3d_6a_1x1`` is replaced by the shared classifier head
(:func:`vsfusion.models.heads.build_classifier_head`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

import h5py
import keras
import numpy as np
from keras import layers

from vsfusion.models.heads import trunk_or_classifier

__all__ = [
    "EMBED_DIM",
    "MIN_FRAMES",
    "MIN_SIZE",
    "MIXED_FILTERS",
    "build_i3d",
    "load_i3d_weights",
]

logger = logging.getLogger(__name__)

#: Width of the trunk's output embedding (channels of ``Mixed_5c``).
EMBED_DIM = 1024
#: Smallest accepted number of frames (the trunk downsamples time by 8).
MIN_FRAMES = 8
#: Smallest accepted height and width in pixels (the trunk downsamples space by 32).
MIN_SIZE = 32

#: Filters of each Inception block: (0a_1x1, 1a_1x1, 1b_3x3, 2a_1x1, 2b_3x3, 3b_1x1).
MIXED_FILTERS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3b": (64, 96, 128, 16, 32, 32),
    "3c": (128, 128, 192, 32, 96, 64),
    "4b": (192, 96, 208, 16, 48, 64),
    "4c": (160, 112, 224, 24, 64, 64),
    "4d": (128, 128, 256, 24, 64, 64),
    "4e": (112, 144, 288, 32, 64, 64),
    "4f": (256, 160, 320, 32, 128, 128),
    "5b": (256, 160, 320, 32, 128, 128),
    "5c": (384, 192, 384, 48, 128, 128),
}

_STEM_CONV = "Conv3d_1a_7x7_conv"
# Keras' default (0.99) leaves the moving statistics near their initial values for hundreds of
# steps; research datasets here give 10-50 steps per epoch, so validation during the first epochs
# would see an untrained normalisation. 0.9 tracks the batch statistics within ~20 steps.
BN_MOMENTUM = 0.9


def _conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: tuple[int, int, int],
    name: str,
    strides: tuple[int, int, int] = (1, 1, 1),
) -> keras.KerasTensor:
    """Conv3D (no bias, 'same') -> BatchNormalization(scale=False) -> ReLU, named as the files."""
    x = layers.Conv3D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, scale=False, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def _mixed(x: keras.KerasTensor, block: str) -> keras.KerasTensor:
    """One Inception block ``Mixed_<block>`` with the published branch filter counts."""
    f0, f1a, f1b, f2a, f2b, f3b = MIXED_FILTERS[block]
    b0 = _conv_bn(x, f0, (1, 1, 1), f"Conv3d_{block}_0a_1x1")
    b1 = _conv_bn(x, f1a, (1, 1, 1), f"Conv3d_{block}_1a_1x1")
    b1 = _conv_bn(b1, f1b, (3, 3, 3), f"Conv3d_{block}_1b_3x3")
    b2 = _conv_bn(x, f2a, (1, 1, 1), f"Conv3d_{block}_2a_1x1")
    b2 = _conv_bn(b2, f2b, (3, 3, 3), f"Conv3d_{block}_2b_3x3")
    b3 = layers.MaxPooling3D(
        (3, 3, 3), strides=(1, 1, 1), padding="same", name=f"MaxPool2d_{block}_3a_3x3"
    )(x)
    b3 = _conv_bn(b3, f3b, (1, 1, 1), f"Conv3d_{block}_3b_1x1")
    return layers.Concatenate(axis=-1, name=f"Mixed_{block}")([b0, b1, b2, b3])


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 4:
        raise ValueError(
            f"I3D input_shape must be (frames, height, width, channels), got {shape!r}"
        )
    if any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) for d in shape):
        raise ValueError(f"I3D input_shape must contain only integers (no None), got {shape!r}")
    frames, height, width, channels = (int(d) for d in shape)
    if frames < MIN_FRAMES or height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(
            f"I3D input_shape {shape!r} is too small: it needs at least {MIN_FRAMES} frames and "
            f"{MIN_SIZE}x{MIN_SIZE} pixels (the trunk downsamples time by 8 and space by 32)"
        )
    if channels not in (1, 3):
        raise ValueError(
            f"I3D input_shape {shape!r} must have 1 (depth) or 3 (RGB) channels, got {channels}"
        )
    return frames, height, width, channels


def build_i3d(
    input_shape: Sequence[int] = (16, 224, 224, 3),
    num_classes: int | None = None,
    dropout: float = 0.5,
    name: str = "i3d",
) -> keras.Model:
    """Builds the Inception-v1 I3D trunk, or the trunk plus a softmax classifier head.

    The input layer is named ``"video"`` and takes float clips in ``[0, 255]``; the model rescales
    them to ``[-1, 1]`` itself (``x / 127.5 - 1``, layer ``rescale``).

    Args:
        input_shape: ``(frames, height, width, channels)``; at least 8 frames and 32x32 pixels,
            with 1 (depth) or 3 (RGB) channels.
        num_classes: Without it the trunk is returned: a model named ``name`` whose output layer
            ``embedding`` is ``(B, 1024)``. With it, the trunk (renamed ``f"{name}_trunk"``)
            and a classifier head (``f"{name}_head"``, Dropout + Dense softmax) are composed
            into one model named ``name`` with output ``(B, num_classes)``.
        dropout: Dropout rate of the classifier head (unused without ``num_classes``).
        name: Name of the returned model.

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: If ``input_shape`` is malformed or too small.

    Example:
        >>> trunk = build_i3d(input_shape=(8, 32, 32, 3))
        >>> trunk.output_shape
        (None, 1024)
        >>> clf = build_i3d(input_shape=(8, 32, 32, 1), num_classes=5)
        >>> clf.output_shape
        (None, 5)
    """
    shape = _check_input_shape(input_shape)

    inputs = keras.Input(shape=shape, name="video")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)

    x = _conv_bn(x, 64, (7, 7, 7), "Conv3d_1a_7x7", strides=(2, 2, 2))
    x = layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2), padding="same", name="MaxPool2d_2a_3x3")(
        x
    )
    x = _conv_bn(x, 64, (1, 1, 1), "Conv3d_2b_1x1")
    x = _conv_bn(x, 192, (3, 3, 3), "Conv3d_2c_3x3")
    x = layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2), padding="same", name="MaxPool2d_3a_3x3")(
        x
    )
    x = _mixed(x, "3b")
    x = _mixed(x, "3c")
    x = layers.MaxPooling3D((3, 3, 3), strides=(2, 2, 2), padding="same", name="MaxPool2d_4a_3x3")(
        x
    )
    for block in ("4b", "4c", "4d", "4e", "4f"):
        x = _mixed(x, block)
    x = layers.MaxPooling3D((2, 2, 2), strides=(2, 2, 2), padding="same", name="MaxPool2d_5a_2x2")(
        x
    )
    x = _mixed(x, "5b")
    x = _mixed(x, "5c")

    pool = tuple(min(p, int(d)) for p, d in zip((2, 7, 7), x.shape[1:4], strict=True))
    x = layers.AveragePooling3D(pool, strides=(1, 1, 1), padding="valid", name="global_avg_pool")(x)
    x = layers.GlobalAveragePooling3D(name="embedding")(x)
    return trunk_or_classifier(inputs, x, num_classes=num_classes, dropout=dropout, name=name)


# --------------------------------------------------------------------------------------------
# Loading Keras-2-style weight files by layer name
# --------------------------------------------------------------------------------------------


def _decode(values: Iterable) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_attr(group: h5py.Group, name: str) -> list[str] | None:
    """Reads a string-list attribute, also when Keras 2 chunked it (``name0``, ``name1``...)."""
    if name in group.attrs:
        return _decode(group.attrs[name])
    if f"{name}0" in group.attrs:
        out: list[str] = []
        chunk = 0
        while f"{name}{chunk}" in group.attrs:
            out.extend(_decode(group.attrs[f"{name}{chunk}"]))
            chunk += 1
        return out
    return None


def _read_weight_file(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Returns ``{layer name: [arrays in weight_names order]}`` for the layers that have weights."""
    out: dict[str, list[np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        layer_names = _read_attr(root, "layer_names")
        if layer_names is None:
            raise ValueError(
                f"{path}: not a Keras-2-style weight file (no 'layer_names' attribute); "
                "files written by Keras 3 `save_weights` are loaded with `model.load_weights`"
            )
        for layer_name in layer_names:
            if layer_name not in root:
                raise ValueError(f"{path}: layer group {layer_name!r} is listed but absent")
            group = root[layer_name]
            weight_names = _read_attr(group, "weight_names") or []
            if weight_names:
                out[layer_name] = [np.asarray(group[w]) for w in weight_names]
    return out


def _find_i3d_trunk(model: keras.Model) -> keras.Model | None:
    """The (possibly nested) functional model that directly holds the I3D stem convolution."""
    if any(layer.name == _STEM_CONV for layer in model.layers):
        return model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _find_i3d_trunk(layer)
            if found is not None:
                return found
    return None


def _shapes(arrays: Iterable) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in a.shape) for a in arrays]


def load_i3d_weights(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    skip_mismatch_layers: Sequence[str] = ("Conv3d_6a_1x1",),
) -> list[str]:
    """Loads a Keras-2-style I3D weight file (e.g. the Kinetics-pretrained files) by layer name.

    The file layout is the Keras 2 ``save_weights`` HDF5 layout: a root attribute
    ``layer_names`` (optionally below a ``model_weights`` group), and for each layer a group with
    attribute ``weight_names`` whose entries are the paths of that layer's arrays, in the layer's
    weight order (conv: kernel; BN with ``scale=False``: beta, moving mean, moving variance).

    Weights are assigned to the I3D trunk found in ``model`` (the model itself, or a trunk nested
    in a classifier or generator model). Every weighted trunk layer must be in the file with the
    same shapes, and every weighted layer of the file must be in the trunk, except the layers in
    ``skip_mismatch_layers`` (a unit name covers its ``_conv``/``_bn`` layers; by default the
    Kinetics logits ``Conv3d_6a_1x1``), which are skipped when absent from the model or of another
    shape. Nothing is assigned unless everything matches.

    A 1-channel (depth) model and a 3-channel (RGB) file: the stem kernel
    ``Conv3d_1a_7x7_conv`` is **summed** over its RGB input channels, so the 1-channel model
    responds to a depth clip as the RGB model responds to that clip replicated in all three
    channels.

    Args:
        model: A model built by :func:`build_i3d`, or one that nests such a trunk.
        path: The ``.h5`` weight file.
        skip_mismatch_layers: File layers that may be absent from the model or mismatched.

    Returns:
        The names of the layers that were loaded, in file order.

    Raises:
        ValueError: If ``model`` holds no I3D trunk, the file is not a Keras-2-style weight file,
            or layer names / weight shapes do not match (the message names the file and every
            offending layer with its shapes).

    Example:
        >>> trunk = build_i3d(input_shape=(16, 224, 224, 3))
        >>> loaded = load_i3d_weights(trunk, "rgb_inception_i3d_tf_dim_ordering_tf_kernels_notop.h5")  # doctest: +SKIP
    """
    trunk = _find_i3d_trunk(model)
    if trunk is None:
        raise ValueError(f"model {model.name!r} contains no I3D trunk (no layer {_STEM_CONV!r})")
    model_layers = {layer.name: layer for layer in trunk.layers if layer.weights}
    file_layers = _read_weight_file(path)
    skip = tuple(skip_mismatch_layers)

    def skippable(layer_name: str) -> bool:
        return any(layer_name == s or layer_name.startswith(f"{s}_") for s in skip)

    problems: list[str] = []
    plan: list[tuple[str, keras.layers.Layer, list[np.ndarray]]] = []
    for layer_name, arrays in file_layers.items():
        layer = model_layers.get(layer_name)
        if layer is None:
            if skippable(layer_name):
                logger.info("%s: skipping file layer %s (not in model)", path, layer_name)
            else:
                problems.append(f"{layer_name}: in file {_shapes(arrays)}, not in model")
            continue
        want = _shapes(layer.weights)
        if (
            layer_name == _STEM_CONV
            and len(arrays) == 1
            and arrays[0].ndim == 5
            and arrays[0].shape[3] == 3
            and want[0][3] == 1
        ):
            logger.info("%s: summing RGB stem kernel over input channels for 1 channel", path)
            arrays = [arrays[0].sum(axis=3, keepdims=True)]
        have = _shapes(arrays)
        if have != want:
            if skippable(layer_name):
                logger.info("%s: skipping file layer %s (shapes %s)", path, layer_name, have)
            else:
                problems.append(f"{layer_name}: file {have} vs model {want}")
            continue
        plan.append((layer_name, layer, arrays))
    for layer_name, layer in model_layers.items():
        if layer_name not in file_layers:
            problems.append(f"{layer_name}: in model {_shapes(layer.weights)}, not in file")
    if problems:
        raise ValueError(
            f"I3D weight file {os.fspath(path)!r} does not match model {trunk.name!r}: "
            + "; ".join(problems)
        )

    for _, layer, arrays in plan:
        for variable, array in zip(layer.weights, arrays, strict=True):
            variable.assign(array.astype(variable.dtype))
    loaded = [layer_name for layer_name, _, _ in plan]
    logger.info("loaded %d I3D layers from %s", len(loaded), path)
    return loaded
