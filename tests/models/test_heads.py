"""Classifier head, trunk + head composition and splitting."""

import keras
import numpy as np
import pytest

from vsfusion.models import build_classifier, build_classifier_head, split_classifier

pytestmark = pytest.mark.backend


def _tiny_trunk(name="tiny", dim=8):
    inputs = keras.Input((5, 3), name="sensor")
    x = keras.layers.Conv1D(dim, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling1D(name="embedding")(x)
    return keras.Model({"sensor": inputs}, x, name=name)


def test_head_probabilities():
    head = build_classifier_head(8, 4, dropout=0.3, name="h")
    assert head.name == "h" and head.input_shape == (None, 8) and head.output_shape == (None, 4)
    assert head.layers[0].name == "embedding" and head.layers[-1].name == "probs"
    probs = keras.ops.convert_to_numpy(head(np.random.default_rng(0).normal(size=(5, 8))))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(probs > 0)


@pytest.mark.parametrize(
    ("args", "message"), [((0, 3), "embed_dim"), ((8, 0), "num_classes"), ((8, 3, 1.0), "dropout")]
)
def test_head_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        build_classifier_head(*args)


def test_compose_and_split(tmp_path):
    trunk, head = _tiny_trunk(), build_classifier_head(8, 3, name="tiny_head")
    model = build_classifier(trunk, head)
    assert model.name == "tiny_classifier"
    assert model.get_layer("tiny") is trunk and model.get_layer("tiny_head") is head
    assert [t.name for t in model.inputs] == ["sensor"]
    assert split_classifier(model) == (trunk, head)

    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(head(trunk({"sensor": x})))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model({"sensor": x})), expected, rtol=1e-6
    )

    model.save(tmp_path / "clf.keras")
    loaded = keras.models.load_model(tmp_path / "clf.keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded({"sensor": x})), expected, rtol=1e-6
    )
    loaded_trunk, loaded_head = split_classifier(loaded)
    assert (loaded_trunk.name, loaded_head.name) == ("tiny", "tiny_head")


def test_compose_rejects_mismatch():
    with pytest.raises(ValueError, match="8-d"):
        build_classifier(_tiny_trunk(), build_classifier_head(16, 3))
    with pytest.raises(ValueError, match="different names"):
        build_classifier(_tiny_trunk(name="x"), build_classifier_head(8, 3, name="x"))


def test_split_rejects_plain_model():
    with pytest.raises(ValueError, match="not a trunk \\+ head"):
        split_classifier(_tiny_trunk())
