"""Momentum contrast (MoCo) for self-supervised pretraining of a video trunk.

The model follows MoCo v2/v3 (He et al. 2020, Chen et al. 2020 and 2021) with the temporal views of
VideoMoCo (Pan et al., CVPR 2021) coming from the loader (:mod:`vsfusion.data.views`):

* **Query encoder**: the trunk being pretrained and a projection MLP (``Dense(hidden, relu) ->
  Dense(proj_dim)``), optionally followed by a prediction MLP of the same form (``predictor=True``,
  MoCo v3 / BYOL). The predictor is off by default: it starts as a random map between the query
  and key spaces, so a positive is no closer than a negative at initialisation, and in short CPU
  runs the loss first drops to the uniform plateau ``log B`` (measured on tiny fixed batches),
  whereas without it the key encoder starts as an exact copy and positives are favoured from step 1.
* **Key encoder**: a copy of trunk and projector that is never trained by gradients. Before every
  training forward pass its weights move towards the query encoder's by an exponential moving
  average, ``k <- m k + (1 - m) q`` (:meth:`MomentumContrast.momentum_update`; done at the start of
  step ``t + 1`` it is the same as MoCo's update at the end of step ``t``). The BatchNormalization
  moving statistics are **copied** from the query encoder instead: the EMA would lag about
  ``1 / (1 - m)`` = 100 steps, several epochs on the small research datasets, and the key encoder
  would normalise with untrained statistics for that long.
* **BatchNorm**: the key encoder runs in inference mode (moving statistics). MoCo shuffles BN
  across devices so that a query and its key are not normalised with statistics of the same
  batch, a shortcut by which the model can match them without learning content; on one CPU
  there is nothing to shuffle over, and inference-mode keys carry no batch statistics at all, so
  the shortcut is closed. The query encoder trains with batch statistics over both views (2B clips).
* **Loss**: symmetrised InfoNCE. For view 1's queries the positives are view 2's keys of the same
  videos, the negatives the other videos' keys in the batch (and the queue); and the same with
  the views swapped; the loss is the mean of the two. At the logits' scale ``1/temperature``.
* **Queue** (``queue_size > 0``, MoCo v2): a non-trainable ``(K, proj_dim)`` variable of past
  keys used as extra negatives, refreshed first-in first-out with both views' keys each step.
  It is off by default: the datasets here hold a few hundred videos, so a queue of a useful size
  holds keys of the very videos in the batch (false negatives) computed by an encoder many steps
  older. In-batch negatives are the robust default.
* **Start**: :meth:`MomentumContrast.calibrate_batchnorm` sets the BatchNorm moving statistics
  from one real batch before training, so the inference-mode keys are meaningful from step 1.

Only ``keras.layers`` and ``keras.ops`` are used, and all state changes are variable assignments
inside ``call``, so the model trains with ``fit`` under the TensorFlow and JAX backends.

Example:
    >>> from vsfusion.models import build_backbone
    >>> q = build_backbone("x3d_xs", (4, 32, 32, 3))
    >>> k = build_backbone("x3d_xs", (4, 32, 32, 3), name="x3d_xs_key")
    >>> moco = MomentumContrast(q, k, proj_dim=16, proj_hidden=32)
    >>> moco.compile(optimizer="adam")
    >>> moco.fit(view_pair_loader, epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

__all__ = ["MomentumContrast", "build_mlp", "info_nce"]


def build_mlp(in_dim: int, hidden: int, out_dim: int, name: str) -> keras.Model:
    """``Dense(hidden, relu) -> Dense(out_dim)``: the projection and prediction heads.

    Example:
        >>> build_mlp(1024, 512, 128, "projector").output_shape
        (None, 128)
    """
    inputs = keras.Input((int(in_dim),), name=f"{name}_input")
    x = layers.Dense(int(hidden), activation="relu", name=f"{name}_hidden")(inputs)
    outputs = layers.Dense(int(out_dim), name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


def info_nce(query: Any, key: Any, negatives: Any | None = None, temperature: float = 0.2) -> Any:
    """Per-sample InfoNCE loss with in-batch (and optional extra) negatives.

    Row ``i`` of ``query`` is scored against every row of ``key`` (positive: row ``i``) and every
    row of ``negatives``; the loss is the cross-entropy of the positive among them. Inputs are
    expected L2-normalised, so the scores are cosine similarities divided by ``temperature``.

    Args:
        query: ``(B, D)`` queries.
        key: ``(B, D)`` keys; ``key[i]`` is the positive of ``query[i]``.
        negatives: ``(K, D)`` extra negatives (a MoCo queue), or None.
        temperature: Softmax temperature.

    Returns:
        ``(B,)`` losses.

    Example:
        >>> import numpy as np
        >>> eye = np.eye(3, dtype="float32")
        >>> float(info_nce(eye, eye, temperature=0.5)[0])  # log(e^2 + 2) - 2
        0.2395...
    """
    logits = ops.matmul(query, ops.transpose(key)) / temperature
    positive = ops.sum(query * key, axis=-1) / temperature
    if negatives is not None:
        logits = ops.concatenate(
            [logits, ops.matmul(query, ops.transpose(negatives)) / temperature], axis=-1
        )
    return ops.logsumexp(logits, axis=-1) - positive


def _normalize(x: Any) -> Any:
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


class MomentumContrast(keras.Model):
    """Query encoder (trunk, projector, optional predictor) trained against a momentum key encoder.

    ``call({"view1", "view2"})`` returns ``{"loss": (B,) symmetrised InfoNCE}``; ``fit`` minimises
    its mean. In training mode each call first applies :meth:`momentum_update` and, with a
    queue, enqueues the new keys. Only the query trunk (``.query_trunk``) is kept afterwards.

    Args:
        query_trunk: The trunk to pretrain (output ``embedding``).
        key_trunk: A trunk of the same architecture (another name); its weights are overwritten
            with the query trunk's and it is made non-trainable.
        proj_dim: Width of the contrasted embedding.
        proj_hidden: Hidden units of the projector and predictor.
        temperature: InfoNCE temperature.
        momentum: EMA momentum ``m`` of the key encoder, in ``[0, 1)``.
        queue_size: Extra negatives kept from earlier steps; 0 for in-batch negatives only.
        predictor: Add the MoCo v3 prediction MLP on the query branch.
        name: Model name.

    Example:
        >>> from vsfusion.models import build_backbone
        >>> moco = MomentumContrast(build_backbone("i3d", (8, 32, 32, 1)),
        ...                         build_backbone("i3d", (8, 32, 32, 1), name="i3d_key"))
    """

    def __init__(
        self,
        query_trunk: keras.Model,
        key_trunk: keras.Model,
        *,
        proj_dim: int = 128,
        proj_hidden: int = 512,
        temperature: float = 0.2,
        momentum: float = 0.99,
        queue_size: int = 0,
        predictor: bool = False,
        name: str = "momentum_contrast",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        embed_dim = int(query_trunk.outputs[0].shape[-1])
        self.query_trunk = query_trunk
        self.projector = build_mlp(embed_dim, proj_hidden, proj_dim, "projector")
        self.predictor = (
            build_mlp(proj_dim, proj_hidden, proj_dim, "predictor") if predictor else None
        )
        self.key_trunk = key_trunk
        self.key_projector = build_mlp(embed_dim, proj_hidden, proj_dim, "key_projector")
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.queue_size = int(queue_size)
        self._pairs = []
        for q_model, k_model in ((query_trunk, key_trunk), (self.projector, self.key_projector)):
            q_weights, k_weights = q_model.weights, k_model.weights
            if [tuple(w.shape) for w in q_weights] != [tuple(w.shape) for w in k_weights]:
                raise ValueError(
                    f"key model {k_model.name!r} does not have the weights of {q_model.name!r}; "
                    "build it with the same builder and input shape"
                )
            k_model.set_weights(q_model.get_weights())
            k_model.trainable = False
            # moving statistics (non-trainable in the query encoder) are copied, weights averaged
            self._pairs.extend(
                (q, k, bool(q.trainable)) for q, k in zip(q_weights, k_weights, strict=True)
            )
        self.queue = (
            self.add_weight(
                shape=(self.queue_size, int(proj_dim)),
                initializer=keras.initializers.RandomNormal(seed=0),
                trainable=False,
                name="queue",
            )
            if self.queue_size
            else None
        )

    def momentum_update(self) -> None:
        """``k <- m k + (1 - m) q`` for every key weight; BatchNorm moving statistics ``k <- q``."""
        m = self.momentum
        for q, k, averaged in self._pairs:
            k.assign(k * m + q * (1.0 - m) if averaged else q)

    def calibrate_batchnorm(self, batch: dict[str, Any]) -> None:
        """Set every BatchNorm moving statistic of the query trunk to the statistics of ``batch``
        (both views) and copy them to the key encoder.

        The key encoder normalises with moving statistics; their initial values (mean 0,
        variance 1) are far from a fresh trunk's activations, and the keys it computes with them
        are nearly the same for every video, which gives the query no signal (the loss sits at
        ``log B``). One forward pass in training mode with BN momentum 0 fixes that before step 1.
        """
        bns = [
            layer
            for layer in self.query_trunk._flatten_layers()
            if isinstance(layer, layers.BatchNormalization)
        ]
        saved = [bn.momentum for bn in bns]
        try:
            for bn in bns:
                bn.momentum = 0.0
            clips = ops.concatenate([batch["view1"], batch["view2"]], axis=0)
            self.query_trunk({"video": clips}, training=True)
        finally:
            for bn, momentum in zip(bns, saved, strict=True):
                bn.momentum = momentum
        for q, k, averaged in self._pairs:
            if not averaged:
                k.assign(q)

    def _query(self, clips: Any, training: Any) -> Any:
        z = self.projector(self.query_trunk({"video": clips}, training=training), training=training)
        return _normalize(self.predictor(z, training=training) if self.predictor else z)

    def _key(self, clips: Any) -> Any:
        h = self.key_trunk({"video": clips}, training=False)
        return ops.stop_gradient(_normalize(self.key_projector(h, training=False)))

    def call(self, inputs: dict[str, Any], training: Any = None) -> dict[str, Any]:
        if training:
            self.momentum_update()
        v1, v2 = inputs["view1"], inputs["view2"]
        b = ops.shape(v1)[0]
        both = ops.concatenate([v1, v2], axis=0)  # one pass: BN statistics over both views
        q = self._query(both, training)
        k = self._key(both)
        q1, q2, k1, k2 = q[:b], q[b:], k[:b], k[b:]
        negatives = _normalize(self.queue) if self.queue is not None else None
        loss = 0.5 * (
            info_nce(q1, k2, negatives, self.temperature)
            + info_nce(q2, k1, negatives, self.temperature)
        )
        if training and self.queue is not None:
            fresh = ops.concatenate([k1, k2, self.queue], axis=0)
            self.queue.assign(fresh[: self.queue_size])
        return {"loss": loss}

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The mean symmetrised InfoNCE of the batch (labels are ignored)."""
        return ops.mean(y_pred["loss"])

    def get_config(self) -> dict[str, Any]:
        """The hyper-parameters (for the record; only the query trunk is ever saved)."""
        return {
            "name": self.name,
            "proj_dim": int(self.projector.outputs[0].shape[-1]),
            "proj_hidden": int(self.projector.layers[1].units),
            "temperature": self.temperature,
            "momentum": self.momentum,
            "queue_size": self.queue_size,
            "predictor": self.predictor is not None,
        }
