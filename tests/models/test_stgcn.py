"""ST-GCN skeleton trunk: graph partition, shapes, trunk + head contract, save/load, mirror
equivariance of the graph aggregation, and overfitting 8 real UTD-MHAD skeletons (skipped without
../shared/data)."""

import keras
import numpy as np
import pytest

from vsfusion.data.skeleton import LAYOUTS, JointLayout, mirror_skeleton, normalize_skeleton
from vsfusion.models import GraphAggregate, build_stgcn, graph_adjacency, split_classifier
from vsfusion.models.stgcn import hop_distance

pytestmark = pytest.mark.backend

FRAMES, JOINTS, COORDS = 16, 20, 3
TINY = {"channels": (8, 16), "temporal_kernel": 3}


def _skeletons(batch=4, frames=FRAMES, joints=JOINTS, coords=COORDS, seed=0):
    return (
        np.random.default_rng(seed).normal(size=(batch, frames, joints, coords)).astype("float32")
    )


def _predict(model, x):
    return keras.ops.convert_to_numpy(model({"skeleton": x}, training=False))


def test_hop_distance_and_spatial_partition_of_a_chain():
    chain = JointLayout("chain", ("a", "b", "c", "d"), [(0, 1), (1, 2), (2, 3)], graph_centre=(1,))
    np.testing.assert_array_equal(hop_distance(4, chain.edges)[0], [0, 1, 2, 3])
    assert np.isinf(hop_distance(3, [(0, 1)])[0, 2])
    root, centripetal, centrifugal = graph_adjacency(chain, "spatial")
    # c (2 hops... 1 hop from the centre b) hears itself, b (nearer: centripetal) and d (farther)
    np.testing.assert_allclose(root[:, 2], [0, 0, 1 / 3, 0])
    np.testing.assert_allclose(centripetal[:, 2], [0, 1 / 3, 0, 0])
    np.testing.assert_allclose(centrifugal[:, 2], [0, 0, 0, 1 / 3])
    # the centre b hears a and c as "as far or farther"
    np.testing.assert_allclose(centrifugal[:, 1], [1 / 3, 0, 1 / 3, 0])
    assert not centripetal[:, 1].any()
    for partition, k in (("spatial", 3), ("distance", 2), ("uniform", 1)):
        a = graph_adjacency(chain, partition)
        assert a.shape == (k, 4, 4) and a.dtype == np.float32
        np.testing.assert_allclose(a.sum(axis=0), graph_adjacency(chain, "uniform")[0], atol=1e-7)
    with pytest.raises(ValueError, match="unknown partition 'random'; known: spatial"):
        graph_adjacency(chain, "random")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_adjacency_is_normalised_and_mirror_symmetric(name):
    lay = LAYOUTS[name]
    a = graph_adjacency(name)
    assert a.shape == (3, lay.num_joints, lay.num_joints)
    np.testing.assert_allclose(a.sum(axis=(0, 1)), 1.0, rtol=1e-6)  # mean over each neighbourhood
    assert (np.diag(a[0]) > 0).all() and np.array_equal(a[0], np.diag(np.diag(a[0])))
    p = lay.mirror_permutation
    np.testing.assert_array_equal(a[:, p][:, :, p], a)


def test_trunk_output_shape_and_contract():
    model = build_stgcn((FRAMES, JOINTS, COORDS))
    assert model.name == "stgcn"
    assert model.input_shape == (None, FRAMES, JOINTS, COORDS)
    assert [t.name for t in model.inputs] == ["skeleton"]
    assert model.output_shape == (None, 128)
    assert model.get_layer("embedding") is not None
    strides = [model.get_layer(f"block{b}_tcn_conv").strides[0] for b in range(6)]
    assert strides == [1, 1, 2, 1, 2, 1]  # 2 where the width grows, as in the reference
    assert "block0_add" not in [layer.name for layer in model.layers]  # no residual in unit 0
    out = _predict(model, _skeletons())
    assert out.shape == (4, 128) and np.all(np.isfinite(out))


def test_variable_frames_2d_input_and_options():
    model = build_stgcn(
        (None, 33, 2), layout="mediapipe-pose", partition="uniform", edge_importance=False, **TINY
    )
    assert model.output_shape == (None, 16)
    assert model.get_layer("block0_graph").trainable_weights == []
    assert _predict(model, _skeletons(2, 9, 33, 2)).shape == (2, 16)
    assert _predict(model, _skeletons(2, 30, 33, 2)).shape == (2, 16)
    holistic = build_stgcn((8, 75, 4), layout=LAYOUTS["mediapipe-holistic"], strides=(1, 1), **TINY)
    assert _predict(holistic, _skeletons(1, 8, 75, 4)).shape == (1, 16)


def test_classifier_and_split():
    model = build_stgcn((FRAMES, JOINTS, COORDS), num_classes=5, dropout=0.2, **TINY)
    assert model.name == "stgcn" and model.output_shape == (None, 5)
    trunk, head = split_classifier(model)
    assert trunk.name == "stgcn_trunk" and head.name == "stgcn_head"
    assert trunk.output_shape == (None, 16) and [t.name for t in trunk.inputs] == ["skeleton"]
    probs = _predict(model, _skeletons())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    x = _skeletons()
    emb = _predict(trunk, x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head(emb, training=False)), probs, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"input_shape": (FRAMES, 25, 3)},
            r"has 25 joints but layout 'kinect-v1' has 20",
        ),
        ({"input_shape": (FRAMES, 20)}, "input_shape"),
        ({"input_shape": (FRAMES, None, 3)}, "input_shape"),
        ({"layout": "openpose"}, "unknown skeleton layout 'openpose'; known: kinect-v1"),
        ({"partition": "random"}, "unknown partition"),
        ({"channels": ()}, "channels"),
        ({"channels": (8, 16), "strides": (1,)}, "strides"),
        ({"temporal_kernel": 4}, "odd"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_stgcn(**{"input_shape": (FRAMES, JOINTS, COORDS), **kwargs})


def test_every_trainable_weight_gets_gradient():
    model = build_stgcn((FRAMES, JOINTS, COORDS), num_classes=3, **TINY)
    names = {v.path.split("/")[-1] for v in model.trainable_variables}
    assert "edge_importance" in names
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy"
    )
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.train_on_batch({"skeleton": _skeletons()}, np.array([0, 1, 2, 1]))
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    unchanged = [
        v.path
        for v, b, a in zip(model.trainable_variables, before, after, strict=True)
        if np.array_equal(b, a)
    ]
    assert unchanged == []


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = build_stgcn((FRAMES, JOINTS, COORDS), num_classes=4, **TINY)
    graph = split_classifier(model)[0].get_layer("block1_graph")
    graph.importance.assign(np.random.default_rng(0).uniform(0.5, 1.5, graph.importance.shape))
    x = _skeletons()
    expected = _predict(model, x)
    model.save(tmp_path / "stgcn.keras")
    loaded = keras.models.load_model(tmp_path / "stgcn.keras")
    np.testing.assert_allclose(_predict(loaded, x), expected, rtol=1e-5, atol=1e-6)
    loaded_graph = split_classifier(loaded)[0].get_layer("block1_graph")
    assert isinstance(loaded_graph, GraphAggregate)
    np.testing.assert_array_equal(loaded_graph.adjacency, graph.adjacency)
    trunk, _ = split_classifier(loaded)
    assert trunk.get_layer("embedding") is not None


def test_graph_aggregation_commutes_with_the_mirror():
    """Mirroring permutes joints; with a mirror-symmetric graph the aggregation commutes with it.
    The whole network is not mirror invariant (x is negated, and learned weights need not be
    symmetric), but mirroring twice gives back the same prediction."""
    lay = LAYOUTS["kinect-v1"]
    p = lay.mirror_permutation
    agg = GraphAggregate(graph_adjacency(lay))
    x = _skeletons(2, 5)
    out = keras.ops.convert_to_numpy(agg(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(agg(x[:, :, p])), out[:, :, p], atol=1e-6)

    model = build_stgcn((FRAMES, JOINTS, COORDS), num_classes=3, **TINY)
    x = np.stack([normalize_skeleton(s, lay) for s in _skeletons()])
    mirrored = np.stack([mirror_skeleton(s, lay) for s in x])
    twice = np.stack([mirror_skeleton(s, lay) for s in mirrored])
    np.testing.assert_allclose(_predict(model, twice), _predict(model, x), rtol=1e-5, atol=1e-6)
    other = _predict(model, mirrored)
    assert np.all(np.isfinite(other)) and not np.allclose(other, _predict(model, x), atol=1e-6)


def _utd_skeletons(root, frames):
    """One skeleton (trial 1 of subject 1) of each of the first 8 UTD-MHAD actions, normalised."""
    from scipy.io import loadmat

    from vsfusion.data.skeleton import resample_skeleton, validate_skeleton

    lay = LAYOUTS["kinect-v1"]
    xs = []
    for action in range(1, 9):
        path = root / f"a{action}_s1_t1_skeleton.mat"
        if not path.is_file():
            pytest.skip(f"{path} is not present")
        x = validate_skeleton(loadmat(path)["d_skel"].transpose(2, 0, 1), path.name, lay)
        xs.append(normalize_skeleton(resample_skeleton(x, frames), lay))
    return np.stack(xs), np.arange(8)


@pytest.mark.graph  # many small steps: one trace costs less than eager steps
def test_tiny_stgcn_overfits_eight_real_utd_mhad_skeletons(shared_data):
    x, y = _utd_skeletons(shared_data / "utd-mhad" / "Skeleton", FRAMES)
    model = build_stgcn(x.shape[1:], num_classes=8, channels=(16, 32), temporal_kernel=5)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="sparse_categorical_crossentropy"
    )
    model.fit({"skeleton": x}, y, batch_size=8, epochs=60, verbose=0)
    # in inference mode: the BatchNorm moving statistics must have caught up too
    accuracy = float((_predict(model, x).argmax(axis=1) == y).mean())
    assert accuracy > 0.9
