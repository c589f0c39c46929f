"""Video backbones: the registry's trunk contract, published compute figures, X3D's depthwise layer."""

import keras
import numpy as np
import pytest

from vsfusion.models import BACKBONES, build_backbone, check_clip, count_macs, split_classifier
from vsfusion.models.r2plus1d import midplanes
from vsfusion.models.x3d import DepthwiseConv3D, SqueezeExcite3D

SMALL = (8, 32, 32, 3)


def _trainable_params(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_config_choices_match_the_registry():
    from vsfusion.config import VideoConfig, build_parser

    choices = next(a.choices for a in build_parser(VideoConfig)._actions if a.dest == "backbone")
    assert tuple(choices) == tuple(BACKBONES)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_published_parameters_and_flops(name):
    """Built at the published clip with a Kinetics-400 classifier, the trainable parameters and
    the multiply-adds match the papers (I3D's 12 M and 108 G are rounded in the sources)."""
    spec = BACKBONES[name]
    frames, size = spec.reference_clip
    model = build_backbone(name, (frames, size, size, 3), num_classes=400)
    params_m = _trainable_params(model) / 1e6
    gmacs = count_macs(model) / 1e9
    tolerance = 0.06 if name == "i3d" else 0.01
    assert params_m == pytest.approx(spec.reference_params_m, rel=tolerance)
    assert gmacs == pytest.approx(spec.reference_gmacs, rel=0.03 if name == "i3d" else 0.01)


def test_r2plus1d_matches_the_reference_exactly():
    model = build_backbone("r2plus1d_18", (16, 112, 112, 3), num_classes=400)
    assert _trainable_params(model) == 31_505_325  # torchvision r2plus1d_18
    assert midplanes(64, 64) == 144 and midplanes(64, 128) == 230


def test_x3d_costs_about_a_fifth_of_i3d_at_the_demo_clip():
    clip = (16, 56, 56, 3)
    ratio = count_macs(build_backbone("i3d", clip)) / count_macs(build_backbone("x3d_xs", clip))
    assert 5.0 < ratio < 7.0


@pytest.mark.parametrize("name", list(BACKBONES))
def test_trunk_contract(name):
    """Input named "video", output layer "embedding" of the registered width, 1 or 3 channels."""
    clf = build_backbone(name, SMALL, num_classes=4)
    trunk, head = split_classifier(clf)
    assert [t.name for t in trunk.inputs] == ["video"]
    assert trunk.get_layer("embedding").output.shape[-1] == BACKBONES[name].embed_dim
    assert clf.output_shape == (None, 4) and trunk.name == f"{name}_trunk"
    depth = build_backbone(name, (*SMALL[:3], 1))
    assert depth.output_shape == (None, BACKBONES[name].embed_dim) and depth.name == name


@pytest.mark.parametrize("name", ["x3d_xs", "r2plus1d_18"])
def test_light_backbones_train_and_save(name, tmp_path):
    """One SGD step moves every trainable weight (all get a gradient); save/load is exact.

    TensorFlow only: under JAX, compiling (or eagerly running) X3D's ~400 layers takes a minute;
    the one backend-specific piece, DepthwiseConv3D, is tested under both below."""
    keras.utils.set_random_seed(0)
    model = build_backbone(name, (4, 32, 32, 3), num_classes=3, dropout=0.0)
    x = {"video": np.random.default_rng(1).uniform(0, 255, (6, 4, 32, 32, 3)).astype("float32")}
    y = np.array([0, 1, 2, 0, 1, 2])
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    # eager: tracing X3D's ~400 layers costs more than running one small step
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        run_eagerly=True,
    )
    model.train_on_batch(x, y)
    unchanged = [
        w.path
        for w, b in zip(model.trainable_weights, before, strict=True)
        if np.array_equal(keras.ops.convert_to_numpy(w), b)
    ]
    assert unchanged == []
    probs = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    assert probs.shape == (6, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(loaded.predict_on_batch(x), probs, atol=1e-5)


@pytest.mark.backend
@pytest.mark.graph  # Keras' grouped Conv3D (the reference) needs its XLA tf.function
@pytest.mark.parametrize(
    ("kernel", "strides", "shape"),
    [
        ((3, 3, 3), (1, 1, 1), (2, 5, 9, 9, 4)),
        ((3, 3, 3), (1, 2, 2), (2, 5, 9, 9, 4)),
        ((5, 1, 1), (1, 1, 1), (2, 6, 8, 8, 3)),
        ((3, 3, 3), (1, 1, 1), (1, 1, 6, 6, 2)),
    ],
)
def test_depthwise_conv3d_equals_a_grouped_convolution(kernel, strides, shape):
    keras.utils.set_random_seed(0)
    layer = DepthwiseConv3D(kernel, strides)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    ref = keras.ops.convert_to_numpy(layer.reference_call(x))
    assert y.shape == layer.compute_output_shape(shape) == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # by hand at one output position: the centre of a stride-1 3x3x3 filter
    if kernel == (3, 3, 3) and strides == (1, 1, 1) and shape[1] >= 3:
        k = keras.ops.convert_to_numpy(layer.kernel)[..., 0]
        want = (x[0, 1:4, 2:5, 3:6, 1] * k[..., 1]).sum()
        assert y[0, 2, 3, 4, 1] == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_depthwise_conv3d_rejects_temporal_stride():
    with pytest.raises(ValueError, match=r"strides \(1, sh, sw\)"):
        DepthwiseConv3D((3, 3, 3), (2, 2, 2))


def test_squeeze_excite_gates_channels():
    layer = SqueezeExcite3D(8)
    x = np.ones((1, 2, 3, 3, 16), "float32")
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == x.shape and np.all((y > 0) & (y < 1))
    assert layer.get_config()["reduced"] == 8


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("i3d", (4, 56, 56, 3), "at least 8 frames and 32x32"),
        ("x3d_xs", (4, 16, 16, 3), "at least 1 frames and 32x32"),
        ("r2plus1d_18", (8, 32, 32, 2), "1 \\(depth\\) or 3 \\(RGB\\)"),
        ("resnet50", (8, 32, 32, 3), "choose one of i3d, x3d_xs, x3d_s, r2plus1d_18"),
    ],
)
def test_check_clip_names_the_fix(name, shape, message):
    with pytest.raises(ValueError, match=message):
        check_clip(name, shape)
