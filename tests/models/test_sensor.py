"""InceptionTime sensor trunk and its in-model normalisation."""

import keras
import numpy as np
import pytest

from vsfusion.models import build_inception_time, fit_normalization, split_classifier

pytestmark = pytest.mark.backend

STEPS, CHANNELS = 48, 6


def _windows(batch=4, steps=STEPS, channels=CHANNELS, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(3.0, 2.0, (batch, steps, channels))).astype("float32")


def _predict(model, x):
    return keras.ops.convert_to_numpy(model({"sensor": x}, training=False))


@pytest.mark.parametrize("channels", [1, CHANNELS])
def test_trunk_output_shape(channels):
    model = build_inception_time(input_shape=(STEPS, channels))
    assert model.name == "inception_time"
    assert model.input_shape == (None, STEPS, channels)
    assert model.output_shape == (None, 128)
    assert model.get_layer("embedding") is not None
    out = _predict(model, _windows(channels=channels))
    assert out.shape == (4, 128) and np.all(np.isfinite(out))


def test_variable_steps_and_options():
    model = build_inception_time(
        input_shape=(None, 3), depth=3, filters=8, kernel_sizes=(3, 5), use_residual=False
    )
    assert model.output_shape == (None, 24)
    assert not any(layer.name.startswith("shortcut") for layer in model.layers)
    assert _predict(model, _windows(2, 17, 3)).shape == (2, 24)
    assert _predict(model, _windows(2, 30, 3)).shape == (2, 24)


def test_residual_every_three_modules():
    model = build_inception_time(input_shape=(STEPS, CHANNELS), depth=6)
    shortcuts = sorted(
        {layer.name.rsplit("_", 1)[0] for layer in model.layers if "shortcut" in layer.name}
    )
    assert shortcuts == ["shortcut_2", "shortcut_5"]
    assert model.get_layer("inception_0_conv40").kernel.shape == (40, 32, 32)
    assert model.get_layer("inception_0_bottleneck").kernel.shape == (1, CHANNELS, 32)


def test_classifier():
    model = build_inception_time(input_shape=(STEPS, CHANNELS), num_classes=5, dropout=0.1)
    assert model.name == "inception_time" and model.output_shape == (None, 5)
    trunk, head = split_classifier(model)
    assert trunk.name == "inception_time_trunk" and head.name == "inception_time_head"
    probs = _predict(model, _windows())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("shape", [(STEPS,), (STEPS, 0), (0, 3), (STEPS, None)])
def test_rejects_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        build_inception_time(input_shape=shape)


def test_every_trainable_weight_gets_gradient():
    model = build_inception_time(input_shape=(STEPS, CHANNELS), num_classes=3)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy"
    )
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.train_on_batch({"sensor": _windows()}, np.array([0, 1, 2, 1]))
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    unchanged = [
        v.path
        for v, b, a in zip(model.trainable_variables, before, after, strict=True)
        if np.array_equal(b, a)
    ]
    assert unchanged == []


def test_normalization_layer_saved_and_loaded(tmp_path):
    x = _windows()
    mean, variance = fit_normalization(x)
    model = build_inception_time(
        input_shape=(STEPS, CHANNELS), num_classes=4, normalization=(mean, variance)
    )
    trunk, _ = split_classifier(model)
    norm = trunk.get_layer("sensor_norm")
    assert trunk.layers[1] is norm
    normed = keras.ops.convert_to_numpy(norm(x))
    np.testing.assert_allclose(normed.mean(axis=(0, 1)), 0.0, atol=1e-4)
    np.testing.assert_allclose(normed.std(axis=(0, 1)), 1.0, atol=1e-3)

    expected = _predict(model, x)
    model.save(tmp_path / "sensor.keras")
    loaded = keras.models.load_model(tmp_path / "sensor.keras")
    np.testing.assert_allclose(_predict(loaded, x), expected, rtol=1e-5, atol=1e-6)
    loaded_norm = split_classifier(loaded)[0].get_layer("sensor_norm")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded_norm.mean).reshape(-1), mean, rtol=1e-6
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded_norm.variance).reshape(-1), variance, rtol=1e-6
    )

    other = build_inception_time(
        input_shape=(STEPS, CHANNELS), num_classes=4, normalization=(mean, variance)
    )
    model.save_weights(tmp_path / "sensor.weights.h5")
    other.load_weights(tmp_path / "sensor.weights.h5")
    np.testing.assert_allclose(_predict(other, x), expected, rtol=1e-5, atol=1e-6)


def test_normalization_shape_mismatch():
    with pytest.raises(ValueError, match="6 values"):
        build_inception_time(input_shape=(STEPS, CHANNELS), normalization=(np.zeros(3), np.ones(3)))


def test_fit_normalization_matches_numpy_and_streams():
    parts = [_windows(3, 20, seed=1), _windows(5, 7, seed=2), _windows(1, 50, seed=3)]
    flat = np.concatenate([p.reshape(-1, CHANNELS) for p in parts]).astype(np.float64)
    mean, variance = fit_normalization(parts)
    assert mean.dtype == np.float64 and mean.shape == (CHANNELS,)
    np.testing.assert_allclose(mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(variance, flat.var(axis=0), rtol=1e-10)
    # (x, y) batches and {"sensor": x} dicts, as a loader yields them
    batches = [({"sensor": p, "video": None}, np.zeros(len(p))) for p in parts]
    np.testing.assert_allclose(fit_normalization(batches)[0], mean, rtol=1e-12)
    np.testing.assert_allclose(fit_normalization(iter(batches))[1], variance, rtol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_normalization_rejects_non_finite(bad):
    x = _windows()
    x[1, 3, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_normalization(x)


def test_fit_normalization_rejects_empty_and_ragged_channels():
    with pytest.raises(ValueError, match="no sensor data"):
        fit_normalization([])
    with pytest.raises(ValueError, match="channels"):
        fit_normalization([_windows(channels=3), _windows(channels=4)])


def test_segment_pooling_keeps_the_order_of_beginning_middle_and_end():
    from vsfusion.models.sensor import SegmentPooling1D

    x = np.concatenate([np.zeros((1, 4, 2)), np.ones((1, 4, 2)), 2 * np.ones((1, 4, 2))], axis=1)
    out = np.asarray(SegmentPooling1D(3)(x.astype("float32")))
    np.testing.assert_allclose(out, [[0, 0, 1, 1, 2, 2]])
    reverse = np.asarray(SegmentPooling1D(3)(x[:, ::-1].astype("float32").copy()))
    assert not np.allclose(out, reverse)  # global average pooling could not tell these apart
    trunk = build_inception_time((12, 2), segments=3, depth=1, filters=4)
    assert trunk.output_shape == (None, 3 * 16)
    with pytest.raises(ValueError, match="known number of steps"):
        build_inception_time((None, 2), segments=3)


def test_statistics_pooling_matches_numpy_over_the_whole_and_each_segment():
    from vsfusion.models.sensor import StatisticsPooling1D

    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype("float32")
    out = np.asarray(StatisticsPooling1D(segments=3)(x))
    parts = [x, x[:, 0:4], x[:, 4:8], x[:, 8:12]]
    expected = np.concatenate(
        [f(p, axis=1) for p in parts for f in (np.mean, np.std, np.min, np.max)], axis=-1
    )
    assert out.shape == (2, 4 * 3 * 4)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_stats_widen_the_embedding_and_survive_saving(tmp_path):
    x = _windows()
    plain = build_inception_time((STEPS, CHANNELS), segments=3, depth=1, filters=4)
    trunk = build_inception_time((STEPS, CHANNELS), segments=3, depth=1, filters=4, stats=True)
    assert trunk.output_shape == (None, plain.output_shape[-1] + 4 * CHANNELS * 4)
    assert trunk.get_layer("embedding") is trunk.layers[-1]
    model = build_inception_time(
        (STEPS, CHANNELS),
        num_classes=4,
        depth=1,
        filters=4,
        stats=True,
        normalization=fit_normalization(x),
    )
    expected = _predict(model, x)
    model.save(tmp_path / "stats.keras")
    loaded = keras.models.load_model(tmp_path / "stats.keras")
    np.testing.assert_allclose(_predict(loaded, x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="known number of steps"):
        build_inception_time((None, CHANNELS), stats=True)
