"""Generator head, training model (Huber + norm + CE through the frozen sensor head)."""

import keras
import numpy as np
import pytest

from vsfusion.models import (
    CrossModalLogits,
    L2Norm,
    Temper,
    build_classifier_head,
    build_cmc_model,
    build_control_head,
    build_generated_sensor_model,
    build_generator_head,
    build_generator_training_model,
    build_privileged_model,
    generator_loss_weights,
    generator_losses,
)

pytestmark = pytest.mark.backend

VIDEO = (4, 8, 8, 1)
H_DIM, U_DIM, CLASSES, BATCH = 16, 6, 3, 8


def _video_trunk(name="video_trunk"):
    inputs = keras.Input(VIDEO, name="video")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv3D(H_DIM, 3, padding="same", use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling3D(name="embedding")(x)
    return keras.Model({"video": inputs}, x, name=name)


def _parts():
    return (
        _video_trunk(),
        build_generator_head(H_DIM, U_DIM, hidden=32),
        build_classifier_head(U_DIM, CLASSES, name="sensor_head"),
    )


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = {"video": rng.uniform(0, 255, (BATCH, *VIDEO)).astype("float32")}
    u_s = rng.normal(0, 1, (BATCH, U_DIM)).astype("float32")
    labels = rng.integers(0, CLASSES, BATCH)
    y = {"embedding": u_s, "norm": np.linalg.norm(u_s, axis=1, keepdims=True), "probs": labels}
    return x, y


def _values(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def _changed(before, after):
    return [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]


def _np(tensor):
    return keras.ops.convert_to_numpy(tensor)


def test_l2norm_values_and_config():
    layer = L2Norm(name="n", epsilon=0.0)
    out = _np(layer(np.array([[3.0, 4.0], [0.0, 0.0]], "float32")))
    np.testing.assert_allclose(out, [[5.0], [0.0]], atol=1e-6)
    assert layer.compute_output_shape((None, 7)) == (None, 1)
    clone = L2Norm.from_config(layer.get_config())
    assert clone.epsilon == 0.0 and clone.name == "n"
    assert keras.saving.get_registered_object("vsfusion>L2Norm") is L2Norm


def test_generator_head_shape():
    head = build_generator_head(1024, 128, hidden=64, dropout=0.2)
    assert head.name == "generator_head"
    assert head.input_shape == (None, 1024) and head.output_shape == (None, 128)
    assert head.layers[-1].activation is keras.activations.linear


def test_training_model_outputs():
    trunk, gen, sensor_head = _parts()
    model = build_generator_training_model(trunk, gen, sensor_head)
    assert not sensor_head.trainable and trunk.trainable
    x, _ = _batch()
    out = model(x, training=False)
    assert set(out) == {"embedding", "norm", "probs"}
    assert _np(out["embedding"]).shape == (BATCH, U_DIM)
    np.testing.assert_allclose(
        _np(out["norm"]), np.linalg.norm(_np(out["embedding"]), axis=1, keepdims=True), rtol=1e-5
    )
    np.testing.assert_allclose(_np(out["probs"]).sum(axis=1), 1.0, rtol=1e-5)

    inference = build_generated_sensor_model(trunk, gen, sensor_head)
    inf = inference(x, training=False)
    assert set(inf) == {"embedding", "probs"}
    np.testing.assert_allclose(_np(inf["probs"]), _np(out["probs"]), rtol=1e-6)


def test_losses_and_weights():
    losses = generator_losses(huber_delta=0.5)
    assert isinstance(losses["embedding"], keras.losses.Huber)
    assert isinstance(losses["norm"], keras.losses.MeanSquaredError)
    assert isinstance(losses["probs"], keras.losses.SparseCategoricalCrossentropy)
    assert generator_loss_weights(ce=2.0) == {"embedding": 1.0, "norm": 0.1, "probs": 2.0}


def test_loss_decreases_on_fixed_batch():
    model = build_generator_training_model(*_parts())
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=generator_losses(),
        loss_weights=generator_loss_weights(),
    )
    x, y = _batch()
    history = model.fit(x, y, epochs=20, batch_size=BATCH, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]


def test_cross_entropy_flows_through_frozen_sensor_head():
    trunk, gen, sensor_head = _parts()
    model = build_generator_training_model(trunk, gen, sensor_head)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss=generator_losses(),
        loss_weights=generator_loss_weights(huber=0.0, norm=0.0, ce=1.0),
    )
    gen_trainable = [keras.ops.convert_to_numpy(v) for v in gen.trainable_variables]
    head_before, trunk_before = _values(sensor_head), _values(trunk)
    model.train_on_batch(*_batch())
    gen_after = [keras.ops.convert_to_numpy(v) for v in gen.trainable_variables]
    assert all(_changed(gen_trainable, gen_after))  # the CE gradient reaches every generator weight
    assert not any(_changed(head_before, _values(sensor_head)))
    assert any(_changed(trunk_before, _values(trunk)))


def test_frozen_trunk_unchanged():
    trunk, gen, sensor_head = _parts()
    model = build_generator_training_model(trunk, gen, sensor_head, train_trunk=False)
    assert not trunk.trainable
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1),
        loss=generator_losses(),
        loss_weights=generator_loss_weights(),
    )
    trunk_before, gen_before = _values(trunk), _values(gen)
    x, y = _batch()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert not any(_changed(trunk_before, _values(trunk)))  # BN statistics included
    assert all(_changed(gen_before, _values(gen)))


def test_save_load_training_model(tmp_path):
    model = build_generator_training_model(*_parts())
    x, _ = _batch()
    expected = {k: _np(v) for k, v in model(x, training=False).items()}
    model.save(tmp_path / "generator.keras")
    loaded = keras.models.load_model(tmp_path / "generator.keras")
    got = loaded(x, training=False)
    for key, value in expected.items():
        np.testing.assert_allclose(_np(got[key]), value, rtol=1e-5, atol=1e-6)
    assert not loaded.get_layer("sensor_head").trainable


def test_rejects_mismatched_parts():
    trunk, gen, sensor_head = _parts()
    with pytest.raises(ValueError, match="generator head"):
        build_generator_training_model(trunk, build_generator_head(H_DIM + 1, U_DIM), sensor_head)
    with pytest.raises(ValueError, match="sensor head"):
        build_generated_sensor_model(trunk, gen, build_classifier_head(U_DIM + 1, 3, name="s"))


# --------------------------------------------------------------------------------------------
# generators with their own trunk, and their controls


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_temper_equals_softmax_of_logits_over_temperature():
    z = np.random.default_rng(0).normal(0, 3, (5, 4)).astype("float32")
    for t in (0.5, 1.0, 4.0):
        got = _np(Temper(t)(_softmax(z)))
        np.testing.assert_allclose(got, _softmax(z / t), rtol=1e-4, atol=1e-6)
    soft = _np(Temper(4.0)(_softmax(z)))
    assert np.all(soft.max(axis=1) < _softmax(z).max(axis=1))  # softer, same argmax
    np.testing.assert_array_equal(soft.argmax(axis=1), z.argmax(axis=1))
    assert Temper.from_config(Temper(2.5).get_config()).temperature == 2.5
    with pytest.raises(ValueError, match="positive"):
        Temper(0.0)


def test_cross_modal_logits_are_scaled_cosines_both_ways():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(_np(CrossModalLogits(0.1)([a, b])), an @ bn.T / 0.1, atol=1e-4)
    back = _np(CrossModalLogits(0.1, transpose=True)([a, b]))
    np.testing.assert_allclose(back, (an @ bn.T / 0.1).T, atol=1e-4)
    # matched pairs score highest: the InfoNCE loss of b = a is below that of unrelated b
    same, other = _np(CrossModalLogits(0.1)([a, a])), _np(CrossModalLogits(0.1)([a, b]))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(ce(np.arange(6), same)) < float(ce(np.arange(6), other))
    assert CrossModalLogits(0.1).compute_output_shape(((6, 5), (7, 5))) == (6, 7)


def test_control_head_has_the_generators_size_and_a_softmax():
    head = build_control_head(H_DIM, CLASSES, hidden=32, output_dim=U_DIM)
    gen = build_generator_head(H_DIM, U_DIM, hidden=32)
    out = head(np.ones((2, H_DIM), "float32"))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"embedding": (2, U_DIM), "probs": (2, 3)}
    softmax = head.get_layer("control_probs").count_params()
    assert head.count_params() - softmax == gen.count_params()
    probe = build_control_head(H_DIM, CLASSES, hidden=None)
    out = probe(np.ones((2, H_DIM), "float32"))
    np.testing.assert_allclose(_np(out["embedding"]), np.ones((2, H_DIM)))
    np.testing.assert_allclose(_np(out["probs"]).sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="output_dim"):
        build_control_head(H_DIM, CLASSES, hidden=32)


def test_privileged_model_trains_trunk_and_generator_not_the_sensor_head():
    trunk, gen, sensor_head = _parts()
    class_head = build_classifier_head(H_DIM, CLASSES, name="class_head")
    model = build_privileged_model(trunk, class_head, gen, sensor_head, temperature=4.0)
    x, y = _batch()
    out = model(x, training=False)
    assert sorted(out) == ["class_probs", "embedding", "kd", "norm", "probs"]
    np.testing.assert_allclose(_np(out["kd"]), _np(Temper(4.0)(out["probs"])), atol=1e-5)
    y = {
        **y,
        "class_probs": y["probs"],
        "kd": _softmax(np.random.default_rng(2).normal(size=(BATCH, CLASSES))).astype("float32"),
    }
    losses = {
        **generator_losses(),
        "class_probs": "sparse_categorical_crossentropy",
        "kd": keras.losses.KLDivergence(),
    }
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses)
    trunk_before, gen_before = _values(trunk), _values(gen)
    sensor_before = _values(sensor_head)
    model.train_on_batch(x, y)
    assert any(_changed(trunk_before, _values(trunk)))
    assert any(_changed(gen_before, _values(gen)))
    assert not any(_changed(sensor_before, _values(sensor_head)))
    control = build_privileged_model(_video_trunk("t2"), build_classifier_head(H_DIM, CLASSES))
    assert list(control(x, training=False)) == ["class_probs"]
    with pytest.raises(ValueError, match="neither"):
        build_privileged_model(trunk, class_head, gen, None)


def test_cmc_model_aligns_matched_pairs():
    rng = np.random.default_rng(3)
    trunk = _video_trunk()
    model = build_cmc_model(
        trunk,
        build_classifier_head(H_DIM, CLASSES),
        U_DIM,
        proj_dim=8,
        hidden=16,
        temperature=0.2,
    )
    x, y = _batch()
    x = {**x, "sensor_embedding": rng.normal(size=(BATCH, U_DIM)).astype("float32")}
    out = model(x, training=False)
    assert sorted(out) == ["class_probs", "cmc_sensor", "cmc_video"]
    assert tuple(out["cmc_video"].shape) == (BATCH, BATCH)
    np.testing.assert_allclose(_np(out["cmc_sensor"]), _np(out["cmc_video"]).T, atol=1e-5)
    targets = {
        "class_probs": y["probs"],
        "cmc_video": np.arange(BATCH),
        "cmc_sensor": np.arange(BATCH),
    }
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss={"class_probs": "sparse_categorical_crossentropy", "cmc_video": ce, "cmc_sensor": ce},
    )
    first = model.evaluate(x, targets, batch_size=BATCH, verbose=0, return_dict=True)
    for _ in range(30):
        model.train_on_batch(x, targets)
    last = model.evaluate(x, targets, batch_size=BATCH, verbose=0, return_dict=True)
    assert last["cmc_video_loss"] < first["cmc_video_loss"]
    control = build_cmc_model(_video_trunk("t2"), build_classifier_head(H_DIM, CLASSES), None)
    assert list(control({"video": x["video"]}, training=False)) == ["class_probs"]
