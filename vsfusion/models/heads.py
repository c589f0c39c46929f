"""The classifier head shared by every modality, and composition of a trunk with a head.

A trunk maps its inputs to an embedding (its output layer is named ``"embedding"``); a head maps
an embedding to class probabilities (input ``"embedding"``, output layer ``"probs"``). A
classifier is the two nested in one functional model, so each part can be taken back out
(:func:`split_classifier`) and reused, e.g. the sensor head frozen inside the generator.
"""

from __future__ import annotations

import logging

import keras
from keras import layers

__all__ = [
    "build_classifier",
    "build_classifier_head",
    "call_on_inputs",
    "model_inputs_like",
    "split_classifier",
    "trunk_or_classifier",
]

logger = logging.getLogger(__name__)


def build_classifier_head(
    embed_dim: int,
    num_classes: int,
    dropout: float = 0.0,
    name: str = "head",
) -> keras.Model:
    """Builds the classifier head: Dropout then a Dense softmax layer named ``"probs"``.

    Args:
        embed_dim: Width of the embedding it takes (input layer ``"embedding"``).
        num_classes: Number of classes (at least 1).
        dropout: Dropout rate applied to the embedding, in ``[0, 1)``.
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` from ``(B, embed_dim)`` to ``(B, num_classes)``
        probabilities.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> head = build_classifier_head(1024, 10, dropout=0.5)
        >>> head.output_shape
        (None, 10)
    """
    if int(embed_dim) < 1:
        raise ValueError(f"embed_dim must be positive, got {embed_dim}")
    if num_classes is None or int(num_classes) < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=(int(embed_dim),), name="embedding")
    x = layers.Dropout(float(dropout), name="dropout")(inputs)
    outputs = layers.Dense(int(num_classes), activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def _input_like(tensor: keras.KerasTensor) -> keras.KerasTensor:
    return keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=tensor.name)


def model_inputs_like(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """Fresh ``keras.Input`` tensors with the names, shapes and dtypes of ``model``'s inputs.

    Models fed by batches take a dict of inputs keyed by input name (``"video"``,
    ``"sensor"``), the keys of the loader's batches.

    Args:
        model: A functional model.

    Returns:
        ``{input name: keras.Input}`` in ``model.inputs`` order.

    Example:
        >>> from vsfusion.models.sensor import build_inception_time
        >>> trunk = build_inception_time(input_shape=(64, 6))
        >>> x = model_inputs_like(trunk)
        >>> sorted(x)
        ['sensor']
        >>> outer = keras.Model(x, build_classifier_head(128, 5)(trunk(x)))
    """
    fresh = [_input_like(t) for t in model.inputs]
    return {t.name: t for t in fresh}


def call_on_inputs(model: keras.Model, inputs: dict[str, keras.KerasTensor]):
    """Calls ``model`` on a dict of named inputs, in the input structure it was built with.

    Args:
        model: A functional model with dict, list or single-tensor inputs.
        inputs: Tensors keyed by ``model``'s input names, e.g. from :func:`model_inputs_like`.

    Returns:
        ``model``'s outputs.

    Example:
        >>> from vsfusion.models.sensor import build_inception_time
        >>> trunk = build_inception_time(input_shape=(64, 6))
        >>> h = call_on_inputs(trunk, model_inputs_like(trunk))
        >>> h.shape
        (None, 128)
    """
    struct = model.input
    if isinstance(struct, dict):
        return model({key: inputs[t.name] for key, t in struct.items()})
    if isinstance(struct, (list, tuple)):
        return model([inputs[t.name] for t in struct])
    return model(inputs[struct.name])


def build_classifier(
    trunk: keras.Model,
    head: keras.Model,
    name: str | None = None,
) -> keras.Model:
    """Composes a trunk and a head (both nested, weights shared) into one classifier.

    The classifier's inputs have the names, shapes and dtypes of the trunk's inputs, so the same
    dict batch (``{"video": ...}``) feeds both. ``classifier.get_layer(trunk.name)`` and
    ``classifier.get_layer(head.name)`` return the parts.

    Args:
        trunk: Model whose output is the embedding.
        head: Model from the embedding to class probabilities.
        name: Name of the classifier; defaults to ``f"{trunk.name}_classifier"``.

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: If trunk and head share a name or the widths do not match.

    Example:
        >>> from vsfusion.models.sensor import build_inception_time
        >>> trunk = build_inception_time(input_shape=(64, 6))
        >>> clf = build_classifier(trunk, build_classifier_head(128, 5, name="sensor_head"))
        >>> clf.get_layer("sensor_head") is not None
        True
    """
    if trunk.name == head.name:
        raise ValueError(f"trunk and head must have different names, both are {trunk.name!r}")
    embed_dim = trunk.outputs[0].shape[-1]
    head_dim = head.inputs[0].shape[-1]
    if embed_dim != head_dim:
        raise ValueError(
            f"trunk {trunk.name!r} gives {embed_dim}-d embeddings but head {head.name!r} "
            f"takes {head_dim}-d"
        )
    inputs = model_inputs_like(trunk)
    outputs = head(call_on_inputs(trunk, inputs))
    return keras.Model(inputs, outputs, name=name or f"{trunk.name}_classifier")


def trunk_or_classifier(
    inputs: keras.KerasTensor,
    embedding: keras.KerasTensor,
    *,
    num_classes: int | None,
    dropout: float,
    name: str,
    input_name: str = "video",
) -> keras.Model:
    """The end of every video backbone builder: the trunk ``{input_name: inputs} -> embedding``
    named ``name``, or, with ``num_classes``, that trunk (renamed ``f"{name}_trunk"``) composed with
    a classifier head ``f"{name}_head"`` into a model named ``name``.

    Example:
        >>> inp = keras.Input((4, 8, 8, 3), name="video")
        >>> emb = keras.layers.GlobalAveragePooling3D(name="embedding")(inp)
        >>> trunk_or_classifier(inp, emb, num_classes=2, dropout=0.0, name="tiny").output_shape
        (None, 2)
    """
    trunk_name = name if num_classes is None else f"{name}_trunk"
    trunk = keras.Model({input_name: inputs}, embedding, name=trunk_name)
    if num_classes is None:
        return trunk
    head = build_classifier_head(
        int(embedding.shape[-1]), num_classes, dropout=dropout, name=f"{name}_head"
    )
    return build_classifier(trunk, head, name=name)


def _is_trunk(model: keras.Model) -> bool:
    return any(
        layer.name == "embedding" and not isinstance(layer, keras.layers.InputLayer)
        for layer in model.layers
    )


def split_classifier(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Finds the trunk and the head nested in a classifier built by :func:`build_classifier`.

    The trunk is the nested model that has a (non-input) layer named ``"embedding"``; the head
    is the other nested model.

    Args:
        model: A classifier, e.g. from :func:`build_classifier` or ``build_i3d(num_classes=...)``
            (also after saving and loading).

    Returns:
        ``(trunk, head)``, the very nested models (weights shared with ``model``).

    Raises:
        ValueError: If ``model`` does not nest exactly one trunk and one head.

    Example:
        >>> from vsfusion.models.i3d import build_i3d
        >>> trunk, head = split_classifier(build_i3d(input_shape=(8, 32, 32, 3), num_classes=4))
        >>> trunk.output_shape, head.output_shape
        ((None, 1024), (None, 4))
    """
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    trunks = [m for m in nested if _is_trunk(m)]
    heads = [m for m in nested if not _is_trunk(m)]
    if len(trunks) != 1 or len(heads) != 1:
        raise ValueError(
            f"model {model.name!r} is not a trunk + head classifier: nested models "
            f"{[m.name for m in nested]} (trunks {[m.name for m in trunks]})"
        )
    return trunks[0], heads[0]
