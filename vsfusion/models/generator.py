"""The generator ("hallucination") stream: video embedding -> synthetic sensor embedding.

Trained on paired data so that from video alone it produces ``u'_v``, the embedding the sensor
trunk would have produced (``u_s``). The training model outputs three named tensors, each with a
standard Keras loss (no custom ``train_step``, so it trains on every backend)::

    model = build_generator_training_model(video_trunk, generator_head, sensor_head)
    model.compile(optimizer, loss=generator_losses(), loss_weights=generator_loss_weights())
    model.fit(x={"video": clips},
              y={"embedding": u_s, "norm": np.linalg.norm(u_s, axis=1, keepdims=True),
                 "probs": labels})

``"embedding"``: Huber(u'_v, u_s); ``"norm"``: squared difference of the Euclidean norms;
``"probs"``: cross-entropy of the frozen sensor head on ``u'_v``. Gradients of the last term flow
through the frozen head into the generator.
"""

from __future__ import annotations

import logging

import keras
from keras import layers, ops

from vsfusion.models.heads import call_on_inputs, model_inputs_like

__all__ = [
    "build_source_trunk",
    "CrossModalLogits",
    "L2Norm",
    "Temper",
    "build_cmc_model",
    "build_control_head",
    "build_generated_sensor_model",
    "build_generator_head",
    "build_generator_training_model",
    "generator_loss_weights",
    "build_privileged_model",
    "generator_losses",
]

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="vsfusion")
class L2Norm(keras.layers.Layer):
    """Per-sample Euclidean norm over the last axis: ``(B, D) -> (B, 1)``.

    ``sqrt(sum(x**2) + epsilon)``; the epsilon keeps the gradient finite at zero.

    Args:
        epsilon: Added under the square root.
        **kwargs: Standard layer arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> keras.ops.convert_to_numpy(L2Norm()(np.array([[3.0, 4.0]], "float32"))).round(3)
        array([[5.]], dtype=float32)
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        return ops.sqrt(ops.sum(ops.square(inputs), axis=-1, keepdims=True) + self.epsilon)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], 1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


def build_generator_head(
    input_dim: int,
    output_dim: int,
    hidden: int = 512,
    dropout: float = 0.0,
    name: str = "generator_head",
) -> keras.Model:
    """Builds the generator MLP: Dense -> BN -> ReLU -> Dropout -> Dense (linear).

    Args:
        input_dim: Width of the video embedding ``h_v`` (1024 for I3D); input ``"embedding"``.
        output_dim: Width of the sensor embedding ``u_s`` it imitates (128 for InceptionTime).
        hidden: Width of the hidden layer.
        dropout: Dropout rate after the hidden layer, in ``[0, 1)``.
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` from ``(B, input_dim)`` to ``(B, output_dim)``.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> gen = build_generator_head(1024, 128)
        >>> gen.output_shape
        (None, 128)
    """
    if min(int(input_dim), int(output_dim), int(hidden)) < 1:
        raise ValueError("input_dim, output_dim and hidden must be positive")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=(int(input_dim),), name="embedding")
    x = layers.Dense(int(hidden), use_bias=False, name="hidden")(inputs)
    x = layers.BatchNormalization(name="hidden_bn")(x)
    x = layers.Activation("relu", name="hidden_relu")(x)
    x = layers.Dropout(float(dropout), name="dropout")(x)
    outputs = layers.Dense(int(output_dim), name="generated_embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def _check_dims(video_trunk: keras.Model, generator_head: keras.Model, sensor_head: keras.Model):
    h_dim = video_trunk.outputs[0].shape[-1]
    if generator_head.inputs[0].shape[-1] != h_dim:
        raise ValueError(
            f"generator head {generator_head.name!r} takes {generator_head.inputs[0].shape[-1]}-d "
            f"input but video trunk {video_trunk.name!r} gives {h_dim}-d embeddings"
        )
    u_dim = generator_head.outputs[0].shape[-1]
    if sensor_head.inputs[0].shape[-1] != u_dim:
        raise ValueError(
            f"sensor head {sensor_head.name!r} takes {sensor_head.inputs[0].shape[-1]}-d input but "
            f"generator head {generator_head.name!r} gives {u_dim}-d embeddings"
        )
    names = [video_trunk.name, generator_head.name, sensor_head.name]
    if len(set(names)) != 3:
        raise ValueError(
            f"video trunk, generator head and sensor head need distinct names: {names}"
        )


def build_generator_training_model(
    video_trunk: keras.Model,
    generator_head: keras.Model,
    sensor_head: keras.Model,
    *,
    train_trunk: bool = True,
    name: str = "generator",
) -> keras.Model:
    """Builds the model the generator is trained with.

    ``sensor_head.trainable`` is set to ``False`` (frozen; its gradient still flows to the
    generator) and ``video_trunk.trainable`` to ``train_trunk``. These flags are set on the models
    passed in (they are shared, not copied); compile after building.

    Args:
        video_trunk: Video trunk (e.g. :func:`vsfusion.models.build_i3d` without classes).
        generator_head: From :func:`build_generator_head`.
        sensor_head: The trained sensor classifier head (embedding -> probabilities).
        train_trunk: Whether the video trunk is fine-tuned with the generator.
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` with the video trunk's inputs and a dict of outputs
        ``{"embedding": u'_v (B, D), "norm": ||u'_v|| (B, 1), "probs": (B, K)}``.

    Raises:
        ValueError: If the widths of the parts do not chain or their names collide.

    Example:
        >>> from vsfusion.models import build_backbone
        >>> from vsfusion.models.heads import build_classifier_head
        >>> trunk = build_backbone("x3d_xs", (4, 32, 32, 3))  # a 2048-d video embedding
        >>> s_head = build_classifier_head(128, 5, name="sensor_head")  # a 128-d sensor head
        >>> model = build_generator_training_model(trunk, build_generator_head(2048, 128), s_head)
        >>> model.compile("adam", loss=generator_losses(), loss_weights=generator_loss_weights())
        >>> sorted(model.output)
        ['embedding', 'norm', 'probs']
    """
    _check_dims(video_trunk, generator_head, sensor_head)
    sensor_head.trainable = False
    video_trunk.trainable = bool(train_trunk)
    inputs = model_inputs_like(video_trunk)
    generated = generator_head(call_on_inputs(video_trunk, inputs))
    outputs = {
        "embedding": generated,
        "norm": L2Norm(name="norm")(generated),
        # training=False: the frozen head also keeps its dropout off, so the cross-entropy sees
        # the head exactly as it classifies at test time.
        "probs": sensor_head(generated, training=False),
    }
    logger.debug("generator model %s: train_trunk=%s", name, train_trunk)
    return keras.Model(inputs, outputs, name=name)


def build_source_trunk(trunks: list[keras.Model], name: str = "source_trunks") -> keras.Model:
    """The trunks of the streams a generator reads, side by side: their inputs (keyed by stream)
    in, the concatenation of their embeddings out (layer ``"embedding"``, trunks in the given
    order). With one trunk, that trunk's embedding.

    Raises:
        ValueError: Two trunks share a name or an input name.

    Example:
        >>> both = build_source_trunk([depth_trunk, skeleton_trunk])  # doctest: +SKIP
        >>> both.output_shape  # (None, 1024 + 256)  # doctest: +SKIP
    """
    names = [t.name for t in trunks]
    inputs: dict[str, keras.KerasTensor] = {}
    for t in trunks:
        fresh = model_inputs_like(t)
        clash = sorted(set(fresh) & set(inputs))
        if clash:
            raise ValueError(f"trunks {names} share the input(s) {clash}; one trunk per stream")
        inputs.update(fresh)
    if len(set(names)) != len(names):
        raise ValueError(f"trunks need distinct names to sit side by side: {names}")
    embeddings = [call_on_inputs(t, inputs) for t in trunks]
    if len(embeddings) == 1:
        out = keras.layers.Identity(name="embedding")(embeddings[0])
    else:
        out = keras.layers.Concatenate(name="embedding")(embeddings)
    return keras.Model(inputs, out, name=name)


def build_generated_sensor_model(
    video_trunk: keras.Model,
    generator_head: keras.Model,
    sensor_head: keras.Model,
    name: str = "generated_sensor",
) -> keras.Model:
    """Builds the inference model: video -> ``{"embedding": u'_v, "probs": p'_v}``.

    Args:
        video_trunk: Video trunk.
        generator_head: Trained generator head.
        sensor_head: Trained sensor classifier head.
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` with the video trunk's inputs and a dict of two outputs.

    Raises:
        ValueError: If the widths of the parts do not chain or their names collide.

    Example:
        >>> from vsfusion.models import build_backbone
        >>> from vsfusion.models.heads import build_classifier_head
        >>> trunk = build_backbone("x3d_xs", (4, 32, 32, 3))  # a 2048-d video embedding
        >>> s_head = build_classifier_head(128, 5, name="sensor_head")  # a 128-d sensor head
        >>> import numpy as np
        >>> gen = build_generator_head(2048, 128)
        >>> clips = np.zeros((2, 4, 32, 32, 3), "float32")
        >>> out = build_generated_sensor_model(trunk, gen, s_head).predict({"video": clips}, verbose=0)
        >>> out["probs"].shape  # (N, K)
        (2, 5)
    """
    _check_dims(video_trunk, generator_head, sensor_head)
    inputs = model_inputs_like(video_trunk)
    generated = generator_head(call_on_inputs(video_trunk, inputs))
    outputs = {"embedding": generated, "probs": sensor_head(generated)}
    return keras.Model(inputs, outputs, name=name)


def generator_losses(huber_delta: float = 1.0) -> dict[str, keras.losses.Loss]:
    """The losses of the generator training model's outputs.

    Args:
        huber_delta: ``delta`` of the Huber loss on the embedding.

    Returns:
        ``{"embedding": Huber, "norm": MeanSquaredError, "probs": SparseCategoricalCrossentropy}``.

    Example:
        >>> sorted((name, type(loss).__name__) for name, loss in generator_losses(0.5).items())
        [('embedding', 'Huber'), ('norm', 'MeanSquaredError'), ('probs', 'SparseCategoricalCrossentropy')]
    """
    return {
        "embedding": keras.losses.Huber(delta=float(huber_delta)),
        "norm": keras.losses.MeanSquaredError(),
        "probs": keras.losses.SparseCategoricalCrossentropy(),
    }


def generator_loss_weights(
    huber: float = 1.0, norm: float = 0.1, ce: float = 0.5
) -> dict[str, float]:
    """Weights of the generator loss terms, keyed like :func:`generator_losses`.

    Args:
        huber: Weight of the Huber embedding loss.
        norm: Weight of the squared norm difference.
        ce: Weight of the cross-entropy through the frozen sensor head.

    Returns:
        ``{"embedding": huber, "norm": norm, "probs": ce}``.

    Example:
        >>> generator_loss_weights(ce=1.0)
        {'embedding': 1.0, 'norm': 0.1, 'probs': 1.0}
    """
    return {"embedding": float(huber), "norm": float(norm), "probs": float(ce)}


# --------------------------------------------------------------------------------------------
# Generators with their own trunk, and the controls without sensor
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="vsfusion")
class Temper(keras.layers.Layer):
    """Softens softmax probabilities by a temperature: ``p -> softmax(log(p) / T)``.

    For ``p = softmax(z)`` this equals ``softmax(z / T)`` (``log p`` and ``z`` differ by a constant
    per sample), so a head that outputs probabilities can be tempered without its logits. Used by
    the ``privileged`` generator to match the sensor head's soft predictions (Hinton et al. 2015).

    Args:
        temperature: ``T > 0``; 1 leaves the probabilities unchanged.
        epsilon: Floor of the probabilities before the logarithm.
        **kwargs: Standard layer arguments.

    Example:
        >>> import numpy as np
        >>> keras.ops.convert_to_numpy(Temper(2.0)(np.array([[0.8, 0.2]], "float32"))).round(3)
        array([[0.667, 0.333]], dtype=float32)
    """

    def __init__(self, temperature: float = 1.0, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(**kwargs)
        if float(temperature) <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.epsilon = float(temperature), float(epsilon)

    def call(self, inputs):
        return ops.softmax(ops.log(ops.maximum(inputs, self.epsilon)) / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"temperature": self.temperature, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="vsfusion")
class CrossModalLogits(keras.layers.Layer):
    """InfoNCE logits between two batches of embeddings: ``cos(a_i, b_j) / temperature``.

    Row ``i`` of the ``(B, B)`` output scores ``a_i`` against every ``b_j`` of the batch; its
    positive is ``j = i`` (the same sample seen by the other modality), so a sparse cross-entropy
    with targets ``0..B-1`` is InfoNCE with in-batch negatives (CMC, Tian et al., ECCV 2020). With
    ``transpose=True`` the output is the other direction, ``b`` against ``a``.

    Args:
        temperature: Scale ``1 / temperature`` of the cosine similarities.
        transpose: Score ``b`` against ``a`` instead.
        **kwargs: Standard layer arguments.
    """

    def __init__(self, temperature: float = 0.1, transpose: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if float(temperature) <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.transpose = float(temperature), bool(transpose)

    def call(self, inputs):
        a, b = (ops.normalize(x, axis=-1) for x in inputs)
        if self.transpose:
            a, b = b, a
        return ops.matmul(a, ops.transpose(b)) / self.temperature

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"temperature": self.temperature, "transpose": self.transpose})
        return config


def build_control_head(
    input_dim: int,
    num_classes: int,
    *,
    hidden: int | None = 512,
    output_dim: int | None = None,
    dropout: float = 0.0,
    name: str = "control_head",
) -> keras.Model:
    """The control's head: an embedding and class probabilities from a video embedding, no sensor.

    With ``hidden`` it is a generator head of that size (to ``output_dim``) followed by a trainable
    softmax layer, the ``video_head_control`` of a shared trunk: the generator's capacity and
    budget, trained with plain cross-entropy. With ``hidden=None`` the embedding passes through and
    only the softmax layer is added (the class head of a ``video_ensemble`` network).

    Args:
        input_dim: Width of the video embedding.
        num_classes: Number of classes.
        hidden: Hidden units of the generator-sized part, or None for none.
        output_dim: Width of the generator-sized part's output (the sensor embedding's width).
        dropout: Dropout of the generator-sized part (or before the softmax when ``hidden=None``).
        name: Name of the model.

    Returns:
        A ``keras.Model`` from ``(B, input_dim)`` to ``{"embedding", "probs"}``.

    Example:
        >>> build_control_head(1024, 5, hidden=512, output_dim=128).output_shape
        [(None, 128), (None, 5)]
    """
    if hidden is None:
        inputs = keras.Input(shape=(int(input_dim),), name="embedding")
        x = layers.Dropout(float(dropout), name="dropout")(inputs)
        embedding = layers.Identity(name="control_embedding")(inputs)
    else:
        if output_dim is None:
            raise ValueError("a generator-sized control head needs output_dim")
        body = build_generator_head(input_dim, output_dim, hidden, dropout, name=f"{name}_body")
        inputs = keras.Input(shape=(int(input_dim),), name="embedding")
        x = embedding = body(inputs)
    probs = layers.Dense(int(num_classes), activation="softmax", name="control_probs")(x)
    return keras.Model(inputs, {"embedding": embedding, "probs": probs}, name=name)


def build_privileged_model(
    trunk: keras.Model,
    class_head: keras.Model,
    generator_head: keras.Model | None = None,
    sensor_head: keras.Model | None = None,
    *,
    temperature: float = 4.0,
    name: str = "privileged",
) -> keras.Model:
    """A video classifier trained with the sensor as privileged information (only video goes in).

    Outputs ``"class_probs"`` (the class head on the trunk's embedding, trained on labels) and,
    with a generator and sensor head, the auxiliary outputs of :func:`build_generator_training_model`
    on the same trunk (``"embedding"``, ``"norm"``, ``"probs"``) plus ``"kd"``, the generated
    stream's probabilities tempered by ``temperature`` (:class:`Temper`) to match the sensor head's
    tempered predictions on the real embedding. Without them it is the plain classifier of the
    ``video_ensemble`` control, the same trunk and class head trained on labels alone.

    Args:
        trunk: The network's video trunk (trained).
        class_head: Embedding -> class probabilities (e.g. ``build_classifier_head``).
        generator_head: Embedding -> sensor-sized embedding, or None for the control.
        sensor_head: The frozen sensor classifier head, or None for the control.
        temperature: Temperature of the ``"kd"`` output.
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` with the trunk's inputs and a dict of outputs.

    Example:
        >>> from vsfusion.models import build_backbone
        >>> from vsfusion.models.heads import build_classifier_head
        >>> trunk = build_backbone("x3d_xs", (4, 32, 32, 3))  # a 2048-d video embedding
        >>> s_head = build_classifier_head(128, 5, name="sensor_head")  # a 128-d sensor head
        >>> import numpy as np
        >>> gen = build_generator_head(2048, 128)
        >>> model = build_privileged_model(trunk, build_classifier_head(2048, 5), gen, s_head)
        >>> sorted(model({"video": np.zeros((2, 4, 32, 32, 3), "float32")}))
        ['class_probs', 'embedding', 'kd', 'norm', 'probs']
    """
    if (generator_head is None) != (sensor_head is None):
        raise ValueError("pass both generator_head and sensor_head, or neither (the control)")
    trunk.trainable = True
    inputs = model_inputs_like(trunk)
    h = call_on_inputs(trunk, inputs)
    outputs = {"class_probs": class_head(h)}
    if generator_head is not None and sensor_head is not None:
        _check_dims(trunk, generator_head, sensor_head)
        sensor_head.trainable = False
        generated = generator_head(h)
        probs = sensor_head(generated, training=False)
        outputs.update(
            embedding=generated,
            norm=L2Norm(name="norm")(generated),
            probs=probs,
            kd=Temper(temperature, name="kd")(probs),
        )
    return keras.Model(inputs, outputs, name=name)


def build_cmc_model(
    trunk: keras.Model,
    class_head: keras.Model,
    sensor_dim: int | None,
    *,
    proj_dim: int = 128,
    hidden: int = 512,
    temperature: float = 0.1,
    name: str = "cmc",
) -> keras.Model:
    """Cross-modal contrastive alignment of a video trunk with fixed sensor embeddings.

    Inputs: the trunk's (``"video"``) and, with ``sensor_dim``, ``"sensor_embedding"`` (``u_s`` of
    the frozen sensor trunk). Both go through their own projection MLP to ``proj_dim``; the outputs
    ``"cmc_video"`` and ``"cmc_sensor"`` are the two directions' InfoNCE logits
    (:class:`CrossModalLogits`), to be trained with sparse cross-entropy against ``0..B-1``, and
    ``"class_probs"`` is the class head on the trunk's embedding. With ``sensor_dim=None`` only
    ``"class_probs"`` is output: the ``video_ensemble`` control, the same trunk trained on labels.

    Args:
        trunk: The video trunk to align (trained).
        class_head: Embedding -> class probabilities.
        sensor_dim: Width of ``u_s``, or None for the control.
        proj_dim: Width of the shared projection space.
        hidden: Hidden units of each projection MLP.
        temperature: Temperature of the InfoNCE logits.
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` with a dict of inputs and a dict of outputs.

    Example:
        >>> import numpy as np
        >>> from vsfusion.models import build_backbone
        >>> from vsfusion.models.heads import build_classifier_head
        >>> trunk = build_backbone("x3d_xs", (4, 32, 32, 3))
        >>> model = build_cmc_model(trunk, build_classifier_head(2048, 5), 128)
        >>> clips, u_s = np.zeros((2, 4, 32, 32, 3), "float32"), np.zeros((2, 128), "float32")
        >>> sorted(model({"video": clips, "sensor_embedding": u_s}))
        ['class_probs', 'cmc_sensor', 'cmc_video']
    """
    from vsfusion.models.contrastive import build_mlp

    trunk.trainable = True
    inputs = model_inputs_like(trunk)
    h = call_on_inputs(trunk, inputs)
    outputs = {"class_probs": class_head(h)}
    if sensor_dim is not None:
        u = keras.Input(shape=(int(sensor_dim),), name="sensor_embedding")
        inputs = {**inputs, "sensor_embedding": u}
        h_dim = int(trunk.outputs[0].shape[-1])
        zv = build_mlp(h_dim, hidden, proj_dim, name="video_projection")(h)
        zs = build_mlp(int(sensor_dim), hidden, proj_dim, name="sensor_projection")(u)
        outputs["cmc_video"] = CrossModalLogits(temperature, name="cmc_video")([zv, zs])
        outputs["cmc_sensor"] = CrossModalLogits(temperature, True, name="cmc_sensor")([zv, zs])
    return keras.Model(inputs, outputs, name=name)
