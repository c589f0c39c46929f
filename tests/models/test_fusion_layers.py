"""Tests for vsfusion.models.fusion_layers and the deployable fused predictor."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from vsfusion.fusion import (
    FUSION_RULES,
    SENSOR_INPUT,
    VIDEO_INPUT,
    apply_fusion,
    build_fused_predictor,
    fuse_weighted,
    select_fusion,
)
from vsfusion.models import WeightedProbabilityFusion
from vsfusion.models.fusion_layers import FUSION_LAYER_RULES

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = {"video": 0.5, "imu": 0.3, "depth": 0.2}


def _probs(n=7, k=5, seed=0):
    rng = np.random.default_rng(seed)
    probs = {s: rng.dirichlet(np.ones(k), size=n).astype("float32") for s in WEIGHTS}
    probs["imu"][0] = 0.0  # a zero row in one stream
    return probs


def _numpy_rule(rule, probs, weights):
    return fuse_weighted(probs, weights) if rule == "weighted" else FUSION_RULES[rule](probs)


def _model(rule, weights=WEIGHTS, k=5):
    inputs = {s: keras.Input((k,), name=s) for s in weights}
    layer = WeightedProbabilityFusion(weights=weights, rule=rule, name="fusion")
    return keras.Model(inputs, layer(inputs))


@pytest.mark.backend
@pytest.mark.parametrize("rule", FUSION_LAYER_RULES)
def test_layer_matches_the_numpy_rules_and_round_trips(rule, tmp_path):
    probs = _probs()
    model = _model(rule)
    got = np.asarray(model.predict(probs, verbose=0))
    np.testing.assert_allclose(got, _numpy_rule(rule, probs, WEIGHTS), atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    path = tmp_path / "fusion.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    config = loaded.get_layer("fusion").get_config()
    assert config["weights"] == WEIGHTS and config["rule"] == rule
    np.testing.assert_array_equal(np.asarray(loaded.predict(probs, verbose=0)), got)


def test_layer_gives_uniform_rows_where_every_stream_is_zero():
    zeros = {s: np.zeros((1, 4), "float32") for s in WEIGHTS}
    for rule in ("sum", "weighted", "max"):
        out = np.asarray(_model(rule, k=4).predict(zeros, verbose=0))
        np.testing.assert_allclose(out, np.full((1, 4), 0.25), atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": WEIGHTS, "rule": "learned"}, "unknown rule"),
        ({"weights": {}}, "non-empty mapping"),
        ({"weights": {"a": 0.5, "b": 0.6}}, "sum to 1"),
        ({"weights": {"a": 1.5, "b": -0.5}}, r"stream 'a' must be in \[0, 1\]"),
        ({"weights": {"a": 1.0}, "eps": 0.0}, "eps"),
    ],
)
def test_layer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WeightedProbabilityFusion(**kwargs)


def test_layer_names_a_missing_stream():
    layer = WeightedProbabilityFusion(weights={"video": 0.5, "sensor": 0.5})
    with pytest.raises(ValueError, match=r"lacks the stream\(s\) \['sensor'\]"):
        layer({"video": np.ones((1, 3), "float32")})


def _streams_model(k=3, dim=4):
    """A stand-in for fused.keras: one input, two streams' probabilities and embeddings out."""
    x = keras.Input((dim,), name="video")
    h = keras.layers.Dense(6, name="trunk")(x)
    u = keras.layers.Dense(5, name="generator")(h)
    outputs = {
        "video_probs": keras.layers.Dense(k, activation="softmax", name="video_head")(h),
        "video_embedding": h,
        "generated_embedding": u,
        "generated_probs": keras.layers.Dense(k, activation="softmax", name="sensor_head")(u),
    }
    return keras.Model(x, outputs, name="fused")


@pytest.mark.backend
@pytest.mark.parametrize("rule", ["weighted", "sum", "product", "max", "learned"])
def test_the_fused_predictor_reproduces_apply_fusion_after_save_and_load(rule, tmp_path):
    streams = _streams_model()
    rng = np.random.default_rng(0)
    x_pool, x_test = rng.normal(size=(60, 4)), rng.normal(size=(11, 4))
    y = rng.integers(0, 3, 60)

    def streams_on(x):
        out = {k: np.asarray(v) for k, v in streams.predict(x, verbose=0).items()}
        probs = {"video": out["video_probs"], "generated_sensor": out["generated_probs"]}
        feats = {VIDEO_INPUT: out["video_embedding"], SENSOR_INPUT: out["generated_embedding"]}
        return probs, feats

    probs, feats = streams_on(x_pool)
    pool = {"probs": probs, "embeddings": feats, "labels": y, "groups": np.repeat(["a", "b"], 30)}
    choice = select_fusion(pool, num_classes=3, max_epochs=2, hidden=8)
    deploy = build_fused_predictor(
        streams,
        choice,
        {"video": "video_probs", "generated_sensor": "generated_probs"},
        {VIDEO_INPUT: "video_embedding", SENSOR_INPUT: "generated_embedding"},
        rule=rule,
    )
    assert [t.name for t in deploy.inputs] == ["video"]
    path = tmp_path / "deploy.keras"
    deploy.save(path)
    loaded = keras.saving.load_model(path)
    expected = apply_fusion(choice, *streams_on(x_test))[rule].astype("float32")
    got = np.asarray(loaded.predict({"video": x_test}, verbose=0))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    if rule != "learned":
        config = loaded.get_layer("fusion").get_config()
        assert config["rule"] == rule
        if rule == "weighted":
            assert config["weights"] == choice.weights


def test_the_fused_predictor_names_a_missing_output():
    streams = _streams_model()
    rng = np.random.default_rng(0)
    probs = {
        "video": rng.dirichlet(np.ones(3), 20),
        "generated_sensor": rng.dirichlet(np.ones(3), 20),
    }
    pool = {"probs": probs, "labels": rng.integers(0, 3, 20), "groups": np.repeat(["a", "b"], 10)}
    choice = select_fusion(pool, num_classes=3)
    with pytest.raises(ValueError, match="no output 'sensor_probs'"):
        build_fused_predictor(
            streams,
            choice,
            {"video": "video_probs", "generated_sensor": "sensor_probs"},
            rule="sum",
        )
    with pytest.raises(ValueError, match="learned rule needs"):
        build_fused_predictor(
            streams,
            choice,
            {"video": "video_probs", "generated_sensor": "generated_probs"},
            rule="learned",
        )


@pytest.mark.slow
def test_the_layer_runs_and_round_trips_under_jax(tmp_path):
    pytest.importorskip("jax")
    script = f"""
import numpy as np, keras
from vsfusion.models import WeightedProbabilityFusion
w = {WEIGHTS!r}
p = {{s: np.random.default_rng(i).dirichlet(np.ones(4), 3).astype("float32")
      for i, s in enumerate(w)}}
for rule in ("sum", "weighted", "product", "max"):
    ins = {{s: keras.Input((4,), name=s) for s in w}}
    m = keras.Model(ins, WeightedProbabilityFusion(weights=w, rule=rule, name="fusion")(ins))
    m.save(r"{tmp_path}/m.keras")
    out = keras.saving.load_model(r"{tmp_path}/m.keras").predict(p, verbose=0)
    np.testing.assert_allclose(np.asarray(out), np.asarray(m.predict(p, verbose=0)), atol=0)
    np.testing.assert_allclose(np.asarray(out).sum(1), 1.0, atol=1e-6)
print(keras.backend.backend())
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "jax"
