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
    "L2Norm",
    "build_generated_sensor_model",
    "build_generator_head",
    "build_generator_training_model",
    "generator_loss_weights",
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
        >>> L2Norm()(np.array([[3.0, 4.0]], "float32"))  # ~ [[5.0]]
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
        >>> model = build_generator_training_model(trunk, build_generator_head(1024, 128), s_head)
        >>> model.compile("adam", loss=generator_losses(), loss_weights=generator_loss_weights())
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
        >>> out = build_generated_sensor_model(trunk, gen, s_head).predict({"video": clips})
        >>> out["probs"].shape  # (N, K)
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
        >>> model.compile("adam", loss=generator_losses(0.5), loss_weights=generator_loss_weights())
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
