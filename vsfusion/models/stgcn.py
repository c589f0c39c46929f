"""Skeleton trunk: the spatial-temporal graph convolution network (ST-GCN).

S. Yan, Y. Xiong and D. Lin, "Spatial Temporal Graph Convolutional Networks for Skeleton-Based
Action Recognition", AAAI 2018. The body is a graph (joints, bones; :mod:`vsfusion.data.skeleton`
layouts); each block mixes every joint with its neighbours (graph convolution), then each joint
with its own past and future (a temporal convolution over 9 frames), with BatchNorm, ReLU and a
residual connection, as in the reference implementation:

    x -> graph conv -> BN -> ReLU -> temporal conv (9x1, stride s) -> BN -> dropout -> + residual -> ReLU

The graph convolution uses the *spatial* partition of the paper (Sec. 3.6) by default: each
joint's neighbourhood is split into three subsets, each with its own weights:

* 0, root: the joint itself;
* 1, centripetal: neighbours nearer (in hops) to the layout's ``graph_centre`` than the joint;
* 2, centrifugal: neighbours as far or farther (the reference code puts equal-distance neighbours
  here too).

Each subset's adjacency is normalised by the receiving joint's degree (a mean over its
neighbourhood, ``A D^-1`` of the reference code) and multiplied by a learnable edge-importance mask
initialised to ones (one per block). ``partition="uniform"`` (one subset) and ``"distance"`` (self
and neighbours) are the paper's simpler strategies. A BatchNorm over every joint's coordinates
(``"skeleton_bn"``, the reference's ``data_bn``) comes first; global average pooling over time and
joints gives the embedding.

Differences from the reference: widths are configurable and small by default (32-32-64-64-128-128
in 6 blocks instead of 64...256 in 10), one skeleton per sample (no multi-person axis), and the
graph aggregation is done before the 1x1 projection (the same linear map, cheaper when the input is
narrower than the output). BatchNorm momentum is 0.9, PyTorch's default that the reference trained
with (Keras' 0.99 leaves the inference statistics far behind in short runs).

Example:
    >>> trunk = build_stgcn((32, 20, 3), layout="kinect-v1")
    >>> trunk.input_shape, trunk.output_shape
    ((None, 32, 20, 3), (None, 128))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import layers

from vsfusion.models.heads import trunk_or_classifier

if TYPE_CHECKING:
    from vsfusion.data.skeleton import JointLayout

__all__ = [
    "PARTITIONS",
    "GraphAggregate",
    "build_stgcn",
    "graph_adjacency",
    "hop_distance",
]

logger = logging.getLogger(__name__)

PARTITIONS: tuple[str, ...] = ("spatial", "distance", "uniform")
"""Neighbourhood partition strategies of Yan et al. (2018): 3, 2 and 1 subsets."""

_BN_MOMENTUM = 0.9


def _resolve_layout(lay: str | JointLayout) -> JointLayout:
    from vsfusion.data.skeleton import layout  # data imports stay out of `import vsfusion.models`

    return layout(lay)


def hop_distance(num_joints: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """``(J, J)`` shortest path lengths in bones between joints (``inf`` between pieces).

    Example:
        >>> hop_distance(3, [(0, 1), (1, 2)]).tolist()
        [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]
    """
    adj = np.eye(num_joints, dtype=bool)
    for a, b in edges:
        adj[a, b] = adj[b, a] = True
    dist = np.full((num_joints, num_joints), np.inf)
    reach = np.eye(num_joints, dtype=bool)
    d = 0
    while True:
        dist[reach & np.isinf(dist)] = d
        grown = (reach.astype(np.int64) @ adj.astype(np.int64)) > 0
        if np.array_equal(grown, reach):
            return dist
        reach, d = grown, d + 1


def graph_adjacency(lay: str | JointLayout, partition: str = "spatial") -> np.ndarray:
    """The normalised adjacency subsets ``(K, J, J)`` of a layout's graph.

    ``A[k, i, j]`` is the weight with which joint ``i`` sends to joint ``j`` in subset ``k``; every
    column of ``A.sum(0)`` sums to 1 (a mean over the receiving joint's neighbourhood, itself
    included), as ``normalize_digraph`` of the reference code.

    Args:
        lay: A :class:`~vsfusion.data.skeleton.JointLayout` or its name.
        partition: ``"spatial"`` (K=3: root, centripetal, centrifugal), ``"distance"`` (K=2: self,
            neighbours) or ``"uniform"`` (K=1).

    Returns:
        float32 ``(K, J, J)``.

    Raises:
        ValueError: For an unknown partition or layout.

    Example:
        >>> a = graph_adjacency("kinect-v1")
        >>> a.shape, bool(np.allclose(a.sum(axis=(0, 1)), 1.0))
        ((3, 20, 20), True)
    """
    lay = _resolve_layout(lay)
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}; known: {', '.join(PARTITIONS)}")
    n = lay.num_joints
    hop = hop_distance(n, lay.edges)
    adj = (hop <= 1).astype(np.float64)
    norm = adj / adj.sum(axis=0, keepdims=True)  # column j divided by the degree of joint j
    if partition == "uniform":
        return norm[None].astype(np.float32)
    self_loops = norm * np.eye(n)
    neighbours = norm - self_loops
    if partition == "distance":
        return np.stack([self_loops, neighbours]).astype(np.float32)
    to_centre = hop[:, list(lay.graph_centre)].min(axis=1)  # inf for a piece with no centre
    sender, receiver = to_centre[:, None], to_centre[None, :]
    # inf == inf (both in a piece without a centre) counts as "as far", as in the reference
    centripetal = np.where(sender < receiver, neighbours, 0.0)
    centrifugal = neighbours - centripetal
    return np.stack([self_loops, centripetal, centrifugal]).astype(np.float32)


@keras.saving.register_keras_serializable(package="vsfusion")
class GraphAggregate(layers.Layer):
    """Per-subset neighbourhood means of joint features: ``(B, T, J, C) -> (B, T, J, K * C)``.

    Output joint ``j``, subset ``k`` is ``sum_i A[k, i, j] * M[k, i, j] * x[:, :, i]``, with ``A``
    the fixed normalised adjacency (:func:`graph_adjacency`) and ``M`` the learnable edge-importance
    mask (ones at first; ``edge_importance=False`` fixes it at ones). A 1x1 projection after it
    (one weight matrix per subset, i.e. a Dense layer on the ``K * C`` features) completes the
    graph convolution of Yan et al.

    Args:
        adjacency: ``(K, J, J)`` nested lists or array.
        edge_importance: Learn the mask ``M``.

    Example:
        >>> agg = GraphAggregate(graph_adjacency("kinect-v1"))
        >>> tuple(agg(np.ones((2, 8, 20, 3), "float32")).shape)
        (2, 8, 20, 9)
    """

    def __init__(self, adjacency: Any, edge_importance: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        a = np.asarray(adjacency, dtype="float32")
        if a.ndim != 3 or a.shape[1] != a.shape[2]:
            raise ValueError(f"adjacency must be (K, J, J), got shape {a.shape}")
        self.adjacency = a
        self.edge_importance = bool(edge_importance)

    def build(self, input_shape: tuple[Any, ...]) -> None:
        joints = self.adjacency.shape[1]
        if input_shape[-2] != joints:
            raise ValueError(
                f"{self.name}: input has {input_shape[-2]} joints, the graph has {joints}"
            )
        self.importance = (
            self.add_weight(
                name="edge_importance",
                shape=self.adjacency.shape,
                initializer="ones",
                trainable=True,
            )
            if self.edge_importance
            else None
        )

    def call(self, x: Any) -> Any:
        a = keras.ops.convert_to_tensor(self.adjacency, dtype=x.dtype)
        if self.importance is not None:
            a = a * keras.ops.cast(self.importance, x.dtype)
        k, joints = self.adjacency.shape[0], self.adjacency.shape[1]
        y = keras.ops.einsum("kvw,btvc->btwkc", a, x)
        shape = keras.ops.shape(x)
        return keras.ops.reshape(y, (shape[0], shape[1], joints, k * x.shape[-1]))

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*input_shape[:-1], self.adjacency.shape[0] * input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "adjacency": self.adjacency.tolist(),
            "edge_importance": self.edge_importance,
        }


def _block(
    x: keras.KerasTensor,
    adjacency: np.ndarray,
    *,
    filters: int,
    stride: int,
    kernel: int,
    residual: bool,
    edge_importance: bool,
    dropout: float,
    name: str,
) -> keras.KerasTensor:
    """One ST-GCN unit: graph conv, BN, ReLU, temporal conv, BN, dropout, residual, ReLU."""
    if not residual:
        res = None
    elif x.shape[-1] == filters and stride == 1:
        res = x
    else:
        res = layers.Conv2D(filters, 1, strides=(stride, 1), name=f"{name}_res_conv")(x)
        res = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_res_bn")(res)
    y = GraphAggregate(adjacency, edge_importance=edge_importance, name=f"{name}_graph")(x)
    y = layers.Dense(filters, name=f"{name}_gcn_conv")(y)
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_gcn_bn")(y)
    y = layers.Activation("relu", name=f"{name}_gcn_relu")(y)
    y = layers.Conv2D(
        filters, (kernel, 1), strides=(stride, 1), padding="same", name=f"{name}_tcn_conv"
    )(y)
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_tcn_bn")(y)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    if res is not None:
        y = layers.Add(name=f"{name}_add")([y, res])
    return layers.Activation("relu", name=f"{name}_relu")(y)


def build_stgcn(
    input_shape: Sequence[int | None] = (None, 20, 3),
    layout: str | JointLayout = "kinect-v1",
    num_classes: int | None = None,
    dropout: float = 0.0,
    channels: Sequence[int] = (32, 32, 64, 64, 128, 128),
    strides: Sequence[int] | None = None,
    temporal_kernel: int = 9,
    partition: str = "spatial",
    edge_importance: bool = True,
    block_dropout: float = 0.0,
    name: str = "stgcn",
    input_name: str = "skeleton",
) -> keras.Model:
    """Builds the ST-GCN skeleton trunk, or the trunk plus a softmax classifier head.

    Args:
        input_shape: ``(frames, joints, channels)``; ``frames`` may be ``None``; ``joints`` must
            be the layout's joint count. Feed normalised skeletons
            (:func:`vsfusion.data.skeleton.normalize_skeleton`).
        layout: A :class:`~vsfusion.data.skeleton.JointLayout` or a name in
            :data:`vsfusion.data.skeleton.LAYOUTS`: the graph.
        num_classes: Without it the trunk is returned: a model named ``name`` with input
            ``"skeleton"`` and output layer ``"embedding"`` of width ``channels[-1]``. With it, the
            trunk (renamed ``f"{name}_trunk"``) and a classifier head (``f"{name}_head"``) are
            composed into one model named ``name``
            (:func:`~vsfusion.models.heads.split_classifier` takes them apart).
        dropout: Dropout rate of the classifier head (unused without ``num_classes``).
        channels: Output width of each block; the number of blocks is its length. The
            reference ST-GCN is ``(64, 64, 64, 64, 128, 128, 128, 256, 256, 256)``.
        strides: Temporal stride of each block; by default 2 where the width grows (after the
            first block), 1 elsewhere, as in the reference.
        temporal_kernel: Frames seen by each temporal convolution (odd; 9 in the paper).
        partition: ``"spatial"``, ``"distance"`` or ``"uniform"`` (:func:`graph_adjacency`).
        edge_importance: Learn an edge-importance mask per block.
        block_dropout: Dropout after each temporal convolution (the reference's ``dropout``).
        name: Name of the returned model.
        input_name: Name of the input (the stream's key in a dict batch).

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: If the input's joint count is not the layout's (naming both), or another
            argument is malformed.

    Example:
        >>> clf = build_stgcn((32, 33, 2), layout="mediapipe-pose", num_classes=10)
        >>> clf.output_shape
        (None, 10)
    """
    lay = _resolve_layout(layout)
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) for s in shape[1:]):
        raise ValueError(
            f"ST-GCN input_shape must be (frames, joints, channels) with integer joints and "
            f"channels, got {shape!r}"
        )
    if shape[0] is not None and int(shape[0]) < 1 or int(shape[2]) < 1:
        raise ValueError(f"ST-GCN input_shape needs frames and channels >= 1, got {shape!r}")
    if int(shape[1]) != lay.num_joints:
        raise ValueError(
            f"ST-GCN input_shape {shape!r} has {shape[1]} joints but layout {lay.name!r} has "
            f"{lay.num_joints}"
        )
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
    if strides is None:
        strides = [1] + [2 if b > a else 1 for a, b in zip(channels, channels[1:], strict=False)]
    strides = [int(s) for s in strides]
    if len(strides) != len(channels) or min(strides) < 1:
        raise ValueError(f"strides {strides} must be positive, one per block of {channels}")
    if temporal_kernel < 1 or temporal_kernel % 2 == 0:
        raise ValueError(f"temporal_kernel must be a positive odd number, got {temporal_kernel}")
    if not 0.0 <= float(block_dropout) < 1.0:
        raise ValueError(f"block_dropout must be in [0, 1), got {block_dropout}")
    adjacency = graph_adjacency(lay, partition)
    frames, joints, coords = shape[0], int(shape[1]), int(shape[2])

    inputs = keras.Input(shape=(frames, joints, coords), name=input_name)
    x = layers.Reshape((-1, joints * coords), name="skeleton_flat")(inputs)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name="skeleton_bn")(x)
    x = layers.Reshape((-1, joints, coords), name="skeleton_joints")(x)
    for b, (width, stride) in enumerate(zip(channels, strides, strict=True)):
        x = _block(
            x,
            adjacency,
            filters=width,
            stride=stride,
            kernel=int(temporal_kernel),
            residual=b > 0,  # the reference's first unit has no residual
            edge_importance=edge_importance,
            dropout=float(block_dropout),
            name=f"block{b}",
        )
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)
    model = trunk_or_classifier(
        inputs,
        embedding,
        num_classes=num_classes,
        dropout=dropout,
        name=name,
        input_name=input_name,
    )
    logger.debug(
        "built ST-GCN %s for %s on %s (%s partition): %d params",
        name,
        shape,
        lay.name,
        partition,
        model.count_params(),
    )
    return model
