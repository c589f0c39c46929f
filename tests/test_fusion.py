"""Tests for vsfusion.fusion: fixed rules against hand-computed numbers, weight choice, MLP."""

import numpy as np
import pytest

from vsfusion.fusion import (
    FUSION_RULES,
    RULE_ORDER,
    SENSOR_INPUT,
    VIDEO_INPUT,
    apply_fusion,
    build_fusion_mlp,
    choose_fusion_weight,
    fit_fusion_mlp,
    fuse_max,
    fuse_product,
    fuse_sum,
    fuse_weighted,
    select_fusion,
)

P_VIDEO = np.array([[0.6, 0.3, 0.1], [0.0, 0.5, 0.5]])
P_SENSOR = np.array([[0.2, 0.5, 0.3], [0.25, 0.25, 0.5]])


# ---------------------------------------------------------------- fixed rules, by hand


def test_fuse_sum_by_hand():
    expected = np.array([[0.4, 0.4, 0.2], [0.125, 0.375, 0.5]])
    np.testing.assert_allclose(fuse_sum(P_VIDEO, P_SENSOR), expected, atol=1e-12)


def test_fuse_weighted_by_hand():
    expected = np.array([[0.5, 0.35, 0.15], [0.0625, 0.4375, 0.5]])
    np.testing.assert_allclose(fuse_weighted(P_VIDEO, P_SENSOR, 0.75), expected, atol=1e-12)
    np.testing.assert_allclose(fuse_weighted(P_VIDEO, P_SENSOR, 1.0), P_VIDEO, atol=1e-12)
    np.testing.assert_allclose(fuse_weighted(P_VIDEO, P_SENSOR, 0.0), P_SENSOR, atol=1e-12)


def test_fuse_product_by_hand():
    # row 0: (0.12, 0.15, 0.03) / 0.30; row 1: (0, 0.125, 0.25) / 0.375
    expected = np.array([[0.4, 0.5, 0.1], [0.0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(fuse_product(P_VIDEO, P_SENSOR), expected, atol=1e-9)


def test_fuse_max_by_hand():
    # row 0: (0.6, 0.5, 0.3) / 1.4; row 1: (0.25, 0.5, 0.5) / 1.25
    expected = np.array([[3 / 7, 5 / 14, 3 / 14], [0.2, 0.4, 0.4]])
    np.testing.assert_allclose(fuse_max(P_VIDEO, P_SENSOR), expected, atol=1e-12)


@pytest.mark.parametrize("rule", [*FUSION_RULES.values(), lambda a, b: fuse_weighted(a, b, 0.3)])
def test_rules_return_probabilities(rule):
    rng = np.random.default_rng(0)
    pv = rng.dirichlet(np.ones(7), size=50)
    ps = rng.dirichlet(np.ones(7), size=50)
    fused = rule(pv, ps)
    assert fused.shape == (50, 7)
    assert np.all(fused >= 0)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-12)


def test_fusion_rules_registry():
    assert FUSION_RULES == {"sum": fuse_sum, "product": fuse_product, "max": fuse_max}


def test_product_with_disjoint_zeros_is_finite():
    pv = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ps = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    fused = fuse_product(pv, ps)
    assert np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(fused[0], [0.5, 0.5, 0.0], atol=1e-9)  # eps*1 vs 1*eps vs eps^2
    np.testing.assert_allclose(fused[1], [1.0, 0.0, 0.0], atol=1e-9)


def test_all_zero_rows_become_uniform():
    zeros = np.zeros((1, 4))
    for rule in (fuse_sum, fuse_max, fuse_product):
        np.testing.assert_allclose(rule(zeros, zeros), np.full((1, 4), 0.25), atol=1e-12)


@pytest.mark.parametrize(
    ("pv", "ps", "message"),
    [
        (np.ones((2, 3)) / 3, np.ones((2, 4)) / 4, "same shape"),
        (np.ones(3) / 3, np.ones(3) / 3, "2-D"),
        (np.array([[np.nan, 1.0]]), np.array([[0.5, 0.5]]), "NaN"),
        (np.array([[np.inf, 1.0]]), np.array([[0.5, 0.5]]), "infinite"),
        (np.array([[-0.1, 1.1]]), np.array([[0.5, 0.5]]), "negative"),
    ],
)
@pytest.mark.parametrize("rule", [fuse_sum, fuse_product, fuse_max])
def test_bad_inputs_raise(rule, pv, ps, message):
    with pytest.raises(ValueError, match=message):
        rule(pv, ps)


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_weighted_rejects_bad_weight(weight):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse_weighted(P_VIDEO, P_SENSOR, weight)


# ---------------------------------------------------------------- choose_fusion_weight


def test_choose_fusion_weight_finds_unique_best():
    # Sample 0 (label 0) is right iff 0.69 w + 0.19 (1 - w) > 0.5, i.e. w > 0.62.
    # Sample 1 (label 1) is right iff 0.66 w + 0.16 (1 - w) < 0.5, i.e. w < 0.68.
    # On the default 0.05 grid only w = 0.65 gets both right.
    pv = np.array([[0.69, 0.31], [0.66, 0.34]])
    ps = np.array([[0.19, 0.81], [0.16, 0.84]])
    y = np.array([0, 1])
    assert choose_fusion_weight(pv, ps, y) == pytest.approx(0.65)


def test_choose_fusion_weight_breaks_accuracy_ties_by_log_loss():
    # Every weight is 100% accurate; the confident video stream has the lowest log-loss.
    pv = np.array([[0.9, 0.1], [0.2, 0.8]])
    ps = np.array([[0.6, 0.4], [0.4, 0.6]])
    assert choose_fusion_weight(pv, ps, np.array([0, 1])) == 1.0


def test_choose_fusion_weight_breaks_full_ties_towards_half():
    p = np.array([[0.7, 0.3], [0.4, 0.6]])
    assert choose_fusion_weight(p, p.copy(), np.array([0, 0])) == 0.5
    assert choose_fusion_weight(p, p.copy(), np.array([0, 0]), grid=[0.0, 0.25, 0.75]) == 0.25


def test_choose_fusion_weight_returns_python_float_from_grid():
    w = choose_fusion_weight(P_VIDEO, P_SENSOR, np.array([0, 2]), grid=np.array([0.2, 0.4]))
    assert isinstance(w, float)
    assert w in (0.2, 0.4)


@pytest.mark.parametrize(
    ("y", "grid", "message"),
    [
        (np.array([0, 3]), None, "outside"),
        (np.array([0]), None, "labels"),
        (np.array([0, 1]), [], "at least one"),
        (np.array([0, 1]), [0.5, 1.2], r"\[0, 1\]"),
    ],
)
def test_choose_fusion_weight_bad_input(y, grid, message):
    with pytest.raises(ValueError, match=message):
        choose_fusion_weight(P_VIDEO, P_SENSOR, y, grid=grid)


# ---------------------------------------------------------------- learned rule


def _toy(n, rng, num_classes=3, video_dim=6, sensor_dim=4):
    """Separable blobs: the class shifts the first video and sensor features."""
    y = rng.integers(0, num_classes, size=n)
    video = rng.normal(size=(n, video_dim)) + 50.0  # far from zero mean: needs normalisation
    sensor = rng.normal(scale=10.0, size=(n, sensor_dim))
    video[:, 0] += 4.0 * y
    sensor[:, 1] += 40.0 * (y == 1)
    return {VIDEO_INPUT: video.astype(np.float32), SENSOR_INPUT: sensor.astype(np.float32)}, y


@pytest.mark.backend
def test_build_fusion_mlp_shapes_and_probabilities():
    model = build_fusion_mlp(8, 4, num_classes=5, hidden=16)
    assert {t.name for t in model.inputs} == {VIDEO_INPUT, SENSOR_INPUT}
    rng = np.random.default_rng(0)
    x = {VIDEO_INPUT: rng.normal(size=(3, 8)), SENSOR_INPUT: rng.normal(size=(3, 4))}
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_build_fusion_mlp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        build_fusion_mlp(8, 4, num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        build_fusion_mlp(8, 4, num_classes=2, dropout=1.0)
    with pytest.raises(ValueError, match="normalization"):
        build_fusion_mlp(8, 4, num_classes=2, normalization={"video": (0.0, 1.0)})


@pytest.mark.backend
def test_fit_fusion_mlp_learns_and_round_trips(tmp_path):
    import keras

    rng = np.random.default_rng(1)
    train, y_train = _toy(150, rng)
    val, y_val = _toy(60, rng)
    model = fit_fusion_mlp(
        train, y_train, val, y_val, num_classes=3, epochs=40, patience=8, hidden=32, seed=0
    )
    probs = np.asarray(model.predict(val, verbose=0))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probs.argmax(axis=1) == y_val) > 0.9

    # standardisation statistics come from the training features and live in the model
    norm = model.get_layer(f"{VIDEO_INPUT}_norm")
    np.testing.assert_allclose(
        np.ravel(keras.ops.convert_to_numpy(norm.mean)), train[VIDEO_INPUT].mean(0), rtol=1e-4
    )

    path = tmp_path / "fusion.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(loaded.predict(val, verbose=0)), probs, rtol=1e-6, atol=1e-7
    )


def test_fit_fusion_mlp_rejects_missing_features():
    rng = np.random.default_rng(0)
    train, y = _toy(10, rng)
    with pytest.raises(ValueError, match=SENSOR_INPUT):
        fit_fusion_mlp({VIDEO_INPUT: train[VIDEO_INPUT]}, y, train, y, num_classes=3)
    with pytest.raises(ValueError, match="outside"):
        fit_fusion_mlp(train, y + 3, train, y, num_classes=3)


# ---------------------------------------------------------------- select_fusion (no test split)


def _pool(n_per_group=30, groups=("a", "b", "c"), seed=0):
    """Video is right on classes 0 and 1 only; the other stream is right on class 2 only."""
    rng = np.random.default_rng(seed)
    n = n_per_group * len(groups)
    y = rng.integers(0, 3, n)
    video = np.where(y[:, None] < 2, np.eye(3)[y] * 0.6 + 0.4 / 3, np.eye(3)[0] * 0.5 + 0.5 / 3)
    other = np.where(y[:, None] == 2, np.eye(3)[y] * 0.9 + 0.1 / 3, np.full((n, 3), 1 / 3))
    return {
        "video_probs": video,
        "other_probs": other,
        "video_embedding": video + rng.normal(0, 0.05, video.shape),
        "sensor_embedding": other + rng.normal(0, 0.05, other.shape),
        "labels": y,
        "groups": np.repeat(groups, n_per_group),
    }


def test_select_fusion_scores_every_rule_on_the_pool_and_beats_video_alone():
    pool = _pool()
    video_alone = np.mean(pool["video_probs"].argmax(1) == pool["labels"])
    choice = select_fusion(pool, num_classes=3, max_epochs=5, hidden=8)
    assert set(choice.scores) == set(RULE_ORDER)
    assert choice.pool == "out-of-fold + validation"
    assert choice.groups == {"a": 30, "b": 30, "c": 30}
    assert 1 <= choice.mlp_epochs <= 5
    assert choice.scores[choice.best] == max(choice.scores.values())
    assert choice.scores[choice.best] > video_alone + 0.2  # the other stream fixes class 2
    # the weight is chosen on the pool, exactly as choose_fusion_weight chooses it
    w = choose_fusion_weight(pool["video_probs"], pool["other_probs"], pool["labels"])
    assert choice.weight == w
    fused = apply_fusion(choice, pool["video_probs"], pool["other_probs"], pool)
    assert set(fused) == {*RULE_ORDER, "best"}
    np.testing.assert_allclose(fused["best"], fused[choice.best])
    np.testing.assert_allclose(fused["learned"].sum(1), 1.0, atol=1e-5)


def test_select_fusion_ties_prefer_parameter_free_rules():
    pool = _pool()
    pool["other_probs"] = pool["video_probs"].copy()  # nothing to gain: every fixed rule ties
    choice = select_fusion(pool, num_classes=3, max_epochs=2, hidden=8)
    fixed = ("sum", "product", "max", "weighted")
    if choice.scores["learned"] <= choice.scores["sum"]:
        assert choice.best == "sum"
    assert len({choice.scores[r] for r in fixed}) == 1


def test_select_fusion_with_one_group_falls_back_to_validation():
    pool = _pool(groups=("val",))
    with pytest.raises(ValueError, match="train_features"):
        select_fusion(pool, num_classes=3, max_epochs=2)
    train = _pool(seed=1)
    choice = select_fusion(
        pool,
        num_classes=3,
        max_epochs=3,
        hidden=8,
        train_features={k: train[k] for k in (VIDEO_INPUT, SENSOR_INPUT)},
        y_train=train["labels"],
    )
    assert choice.pool == "validation" and choice.mlp_epochs is None
    assert choice.describe("weighted").startswith("weighted (w = ")


def test_select_fusion_rejects_inconsistent_pools():
    pool = _pool()
    pool["groups"] = pool["groups"][:-1]
    with pytest.raises(ValueError, match="groups"):
        select_fusion(pool, num_classes=3)
    pool = _pool()
    del pool["other_probs"]
    with pytest.raises(ValueError, match="other_probs"):
        select_fusion(pool, num_classes=3)


def test_fit_fusion_mlp_without_validation_runs_all_epochs_and_records_curves():
    pool = _pool()
    feats = {k: pool[k] for k in (VIDEO_INPUT, SENSOR_INPUT)}
    curve: list[float] = []
    fit_fusion_mlp(
        feats,
        pool["labels"],
        feats,
        pool["labels"],
        num_classes=3,
        epochs=4,
        patience=None,
        history=curve,
        hidden=8,
    )
    assert len(curve) == 4 and all(0 <= a <= 1 for a in curve)
    model = fit_fusion_mlp(feats, pool["labels"], None, None, num_classes=3, epochs=2, hidden=8)
    assert model.predict(feats, verbose=0).shape == (90, 3)
