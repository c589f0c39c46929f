"""Tests for vsfusion.fusion: fixed rules against hand-computed numbers, weight choice, MLP."""

import numpy as np
import pytest

from vsfusion.fusion import (
    FUSION_GRID_MAX_POINTS,
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
    fusion_weight_grid,
    select_fusion,
)

P_VIDEO = np.array([[0.6, 0.3, 0.1], [0.0, 0.5, 0.5]])
P_SENSOR = np.array([[0.2, 0.5, 0.3], [0.25, 0.25, 0.5]])
PAIR = {"video": P_VIDEO, "sensor": P_SENSOR}


def _w(video):
    """Two-stream weights: ``video`` for video, the rest for the sensor."""
    return {"video": video, "sensor": 1.0 - video}


# ---------------------------------------------------------------- fixed rules, by hand


def test_fuse_sum_by_hand():
    expected = np.array([[0.4, 0.4, 0.2], [0.125, 0.375, 0.5]])
    np.testing.assert_allclose(fuse_sum(PAIR), expected, atol=1e-12)


def test_fuse_weighted_by_hand():
    expected = np.array([[0.5, 0.35, 0.15], [0.0625, 0.4375, 0.5]])
    np.testing.assert_allclose(fuse_weighted(PAIR, _w(0.75)), expected, atol=1e-12)
    np.testing.assert_allclose(fuse_weighted(PAIR, _w(1.0)), P_VIDEO, atol=1e-12)
    np.testing.assert_allclose(fuse_weighted(PAIR, _w(0.0)), P_SENSOR, atol=1e-12)


def test_fuse_product_by_hand():
    # row 0: (0.12, 0.15, 0.03) / 0.30; row 1: (0, 0.125, 0.25) / 0.375
    expected = np.array([[0.4, 0.5, 0.1], [0.0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(fuse_product(PAIR), expected, atol=1e-9)


def test_fuse_max_by_hand():
    # row 0: (0.6, 0.5, 0.3) / 1.4; row 1: (0.25, 0.5, 0.5) / 1.25
    expected = np.array([[3 / 7, 5 / 14, 3 / 14], [0.2, 0.4, 0.4]])
    np.testing.assert_allclose(fuse_max(PAIR), expected, atol=1e-12)


P_THIRD = np.array([[0.1, 0.1, 0.8], [0.5, 0.25, 0.25]])
TRIPLE = {"video": P_VIDEO, "sensor": P_SENSOR, "depth": P_THIRD}


def test_three_streams_by_hand():
    # sum: row 0 (0.9, 0.9, 1.2) / 3; row 1 (0.75, 1.0, 1.25) / 3
    np.testing.assert_allclose(
        fuse_sum(TRIPLE), [[0.3, 0.3, 0.4], [0.25, 1 / 3, 5 / 12]], atol=1e-12
    )
    weights = {"video": 0.5, "sensor": 0.25, "depth": 0.25}
    # row 0: 0.5 (0.6, 0.3, 0.1) + 0.25 (0.2, 0.5, 0.3) + 0.25 (0.1, 0.1, 0.8)
    np.testing.assert_allclose(
        fuse_weighted(TRIPLE, weights), [[0.375, 0.3, 0.325], [0.1875, 0.375, 0.4375]], atol=1e-12
    )
    # product row 0: (0.012, 0.015, 0.024) / 0.051; row 1: (0, 1/32, 1/16) / (3/32)
    np.testing.assert_allclose(
        fuse_product(TRIPLE), [[12 / 51, 15 / 51, 24 / 51], [0.0, 1 / 3, 2 / 3]], atol=1e-9
    )
    # max row 0: (0.6, 0.5, 0.8) / 1.9; row 1: (0.5, 0.5, 0.5) / 1.5
    np.testing.assert_allclose(
        fuse_max(TRIPLE), [[6 / 19, 5 / 19, 8 / 19], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12
    )


def test_one_stream_is_its_own_fusion():
    one = {"video": P_VIDEO}
    for fused in (fuse_sum(one), fuse_max(one), fuse_weighted(one, {"video": 1.0})):
        np.testing.assert_allclose(fused, P_VIDEO, atol=1e-12)
    assert choose_fusion_weight(one, np.array([0, 1])) == {"video": 1.0}


@pytest.mark.parametrize(
    "rule",
    [*FUSION_RULES.values(), lambda p: fuse_weighted(p, {s: 1 / len(p) for s in p})],
)
@pytest.mark.parametrize("n_streams", [1, 2, 4])
def test_rules_return_probabilities(rule, n_streams):
    rng = np.random.default_rng(0)
    probs = {f"s{i}": rng.dirichlet(np.ones(7), size=50) for i in range(n_streams)}
    fused = rule(probs)
    assert fused.shape == (50, 7)
    assert np.all(fused >= 0)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-12)


def test_fusion_rules_registry():
    assert FUSION_RULES == {"sum": fuse_sum, "product": fuse_product, "max": fuse_max}


def test_product_with_disjoint_zeros_is_finite():
    pv = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ps = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    fused = fuse_product({"video": pv, "sensor": ps})
    assert np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(fused[0], [0.5, 0.5, 0.0], atol=1e-9)  # eps*1 vs 1*eps vs eps^2
    np.testing.assert_allclose(fused[1], [1.0, 0.0, 0.0], atol=1e-9)


def test_all_zero_rows_become_uniform():
    zeros = np.zeros((1, 4))
    for rule in (fuse_sum, fuse_max, fuse_product):
        np.testing.assert_allclose(
            rule({"video": zeros, "sensor": zeros}), np.full((1, 4), 0.25), atol=1e-12
        )


@pytest.mark.parametrize(
    ("pv", "ps", "message"),
    [
        (np.ones((2, 3)) / 3, np.ones((2, 4)) / 4, "'video' and 'sensor' differ in class count"),
        (np.ones((2, 3)) / 3, np.ones((3, 3)) / 3, "'video' and 'sensor' differ in sample count"),
        (np.ones(3) / 3, np.ones(3) / 3, "2-D"),
        (np.array([[np.nan, 1.0]]), np.array([[0.5, 0.5]]), "stream 'video' contains NaN"),
        (np.array([[np.inf, 1.0]]), np.array([[0.5, 0.5]]), "infinite"),
        (np.array([[0.5, 0.5]]), np.array([[-0.1, 1.1]]), "stream 'sensor' contains negative"),
    ],
)
@pytest.mark.parametrize("rule", [fuse_sum, fuse_product, fuse_max])
def test_bad_inputs_raise(rule, pv, ps, message):
    with pytest.raises(ValueError, match=message):
        rule({"video": pv, "sensor": ps})


@pytest.mark.parametrize(
    ("probs", "message"),
    [({}, "no stream"), (P_VIDEO, "mapping"), ({"": P_VIDEO}, "non-empty strings")],
)
def test_rules_reject_what_is_not_a_mapping_of_streams(probs, message):
    with pytest.raises(ValueError, match=message):
        fuse_sum(probs)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (_w(-0.1), r"\[0, 1\]"),
        (_w(1.5), r"\[0, 1\]"),
        (_w(float("nan")), r"\[0, 1\]"),
        ({"video": 0.5, "sensor": 0.2}, "sum to 1"),
        ({"video": 1.0}, "one weight per stream"),
        (0.5, "mapping"),
    ],
)
def test_weighted_rejects_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        fuse_weighted(PAIR, weights)


# ---------------------------------------------------------------- weight grid and choice


def test_weight_grid_sizes_and_simplex():
    two = fusion_weight_grid(2)
    np.testing.assert_array_equal(two[:, 0], np.linspace(0, 1, 21))  # as the two-stream search
    np.testing.assert_array_equal(two[:, 1], 1.0 - np.linspace(0, 1, 21))
    assert fusion_weight_grid(1).tolist() == [[1.0]]
    assert fusion_weight_grid(3).shape == (66, 3)  # step 0.1
    assert fusion_weight_grid(4).shape == (286, 4)
    assert fusion_weight_grid(5).shape == (715, 5)  # step 1/9: under FUSION_GRID_MAX_POINTS
    assert len(fusion_weight_grid(6)) <= FUSION_GRID_MAX_POINTS
    for n in (3, 4, 5):
        grid = fusion_weight_grid(n)
        assert np.all(grid >= 0)
        np.testing.assert_allclose(grid.sum(axis=1), 1.0, atol=1e-12)
        assert len({tuple(row) for row in grid}) == len(grid)
    assert fusion_weight_grid(3, step=0.05).shape == (231, 3)
    with pytest.raises(ValueError, match="coarser step"):
        fusion_weight_grid(6, step=0.05)
    with pytest.raises(ValueError, match="divide 1"):
        fusion_weight_grid(3, step=0.3)


def test_choose_fusion_weight_finds_unique_best():
    # Sample 0 (label 0) is right iff 0.69 w + 0.19 (1 - w) > 0.5, i.e. w > 0.62.
    # Sample 1 (label 1) is right iff 0.66 w + 0.16 (1 - w) < 0.5, i.e. w < 0.68.
    # On the default 0.05 grid only w = 0.65 gets both right.
    pv = np.array([[0.69, 0.31], [0.66, 0.34]])
    ps = np.array([[0.19, 0.81], [0.16, 0.84]])
    y = np.array([0, 1])
    chosen = choose_fusion_weight({"video": pv, "sensor": ps}, y)
    assert list(chosen) == ["video", "sensor"]
    assert chosen["video"] == pytest.approx(0.65)
    assert chosen["sensor"] == 1.0 - chosen["video"]


def test_choose_fusion_weight_breaks_accuracy_ties_by_log_loss():
    # Every weight is 100% accurate; the confident video stream has the lowest log-loss.
    pv = np.array([[0.9, 0.1], [0.2, 0.8]])
    ps = np.array([[0.6, 0.4], [0.4, 0.6]])
    assert choose_fusion_weight({"video": pv, "sensor": ps}, np.array([0, 1]))["video"] == 1.0


def test_choose_fusion_weight_breaks_full_ties_towards_equal_weights():
    p = np.array([[0.7, 0.3], [0.4, 0.6]])
    same = {"video": p, "sensor": p.copy()}
    assert choose_fusion_weight(same, np.array([0, 0])) == {"video": 0.5, "sensor": 0.5}
    # no equal weights on this grid: 0.25 and 0.75 are as close; the smaller video weight wins
    assert choose_fusion_weight(same, np.array([0, 0]), grid=[0.0, 0.25, 0.75])["video"] == 0.25
    three = {"a": p, "b": p.copy(), "c": p.copy()}
    chosen = choose_fusion_weight(three, np.array([0, 0]), step=0.5)  # no equal point on it
    assert chosen == {"a": 0.0, "b": 0.5, "c": 0.5}  # closest (L1), then lexicographic
    chosen = choose_fusion_weight(three, np.array([0, 0]), grid=np.full((1, 3), 1 / 3))
    assert chosen == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}


def test_choose_fusion_weight_finds_the_one_stream_that_helps_among_three():
    # Class 2 is only recognised by "good"; "noise" is uniform; video is right on 0 and 1.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    video = np.where(y[:, None] < 2, np.eye(3)[y] * 0.6 + 0.4 / 3, np.eye(3)[0] * 0.5 + 0.5 / 3)
    good = np.where(y[:, None] == 2, np.eye(3)[y] * 0.9 + 0.1 / 3, np.full((90, 3), 1 / 3))
    noise = rng.dirichlet(np.ones(3), size=90)
    probs = {"video": video, "noise": noise, "good": good}
    chosen = choose_fusion_weight(probs, y)
    assert list(chosen) == ["video", "noise", "good"]
    assert sum(chosen.values()) == pytest.approx(1.0)
    assert np.mean(fuse_weighted(probs, chosen).argmax(1) == y) == 1.0


def test_choose_fusion_weight_returns_python_floats_from_grid():
    w = choose_fusion_weight(PAIR, np.array([0, 2]), grid=np.array([0.2, 0.4]))
    assert all(isinstance(v, float) for v in w.values())
    assert w["video"] in (0.2, 0.4)


@pytest.mark.parametrize(
    ("y", "grid", "message"),
    [
        (np.array([0, 3]), None, "outside"),
        (np.array([0]), None, "labels"),
        (np.array([0, 1]), [], "at least one"),
        (np.array([0, 1]), [0.5, 1.2], r"\[0, 1\]"),
        (np.array([0, 1]), [[0.5, 0.6]], "sum to 1"),
        (np.array([0, 1]), [[0.5, 0.25, 0.25]], r"\(G, 2\)"),
    ],
)
def test_choose_fusion_weight_bad_input(y, grid, message):
    with pytest.raises(ValueError, match=message):
        choose_fusion_weight(PAIR, y, grid=grid)


def test_choose_fusion_weight_needs_vectors_for_three_streams():
    with pytest.raises(ValueError, match="1-D grid"):
        choose_fusion_weight(TRIPLE, np.array([0, 1]), grid=[0.5])


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
    model = build_fusion_mlp({VIDEO_INPUT: 8, SENSOR_INPUT: 4}, num_classes=5, hidden=16)
    assert {t.name for t in model.inputs} == {VIDEO_INPUT, SENSOR_INPUT}
    rng = np.random.default_rng(0)
    x = {VIDEO_INPUT: rng.normal(size=(3, 8)), SENSOR_INPUT: rng.normal(size=(3, 4))}
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.backend
@pytest.mark.parametrize("dims", [{"video_embedding": 8}, {"a": 8, "b": 4, "c": 2}])
def test_build_fusion_mlp_takes_any_set_of_embeddings(dims):
    model = build_fusion_mlp(dims, num_classes=3, hidden=8)
    assert {t.name for t in model.inputs} == set(dims)
    rng = np.random.default_rng(0)
    x = {k: rng.normal(size=(2, d)) for k, d in dims.items()}
    assert np.asarray(model.predict(x, verbose=0)).shape == (2, 3)


def test_build_fusion_mlp_rejects_bad_arguments():
    dims = {VIDEO_INPUT: 8, SENSOR_INPUT: 4}
    with pytest.raises(ValueError, match="num_classes"):
        build_fusion_mlp(dims, num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        build_fusion_mlp(dims, num_classes=2, dropout=1.0)
    with pytest.raises(ValueError, match="normalization"):
        build_fusion_mlp(dims, num_classes=2, normalization={"video": (0.0, 1.0)})
    with pytest.raises(ValueError, match="input_dims"):
        build_fusion_mlp({}, num_classes=2)
    with pytest.raises(ValueError, match=r"input_dims\['b'\]"):
        build_fusion_mlp({"a": 3, "b": 0}, num_classes=2)


@pytest.mark.graph  # many small steps: one trace costs less than eager steps
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
    short = {VIDEO_INPUT: train[VIDEO_INPUT], SENSOR_INPUT: train[SENSOR_INPUT][:-1]}
    with pytest.raises(ValueError, match=f"'{VIDEO_INPUT}' and '{SENSOR_INPUT}' differ"):
        fit_fusion_mlp(short, y, None, None, num_classes=3)


# ---------------------------------------------------------------- select_fusion (no test split)


def _pool(n_per_group=30, groups=("a", "b", "c"), seed=0):
    """Video is right on classes 0 and 1 only; the other stream is right on class 2 only."""
    rng = np.random.default_rng(seed)
    n = n_per_group * len(groups)
    y = rng.integers(0, 3, n)
    video = np.where(y[:, None] < 2, np.eye(3)[y] * 0.6 + 0.4 / 3, np.eye(3)[0] * 0.5 + 0.5 / 3)
    other = np.where(y[:, None] == 2, np.eye(3)[y] * 0.9 + 0.1 / 3, np.full((n, 3), 1 / 3))
    return {
        "probs": {"video": video, "other": other},
        "embeddings": {
            VIDEO_INPUT: video + rng.normal(0, 0.05, video.shape),
            SENSOR_INPUT: other + rng.normal(0, 0.05, other.shape),
        },
        "labels": y,
        "groups": np.repeat(groups, n_per_group),
    }


def test_select_fusion_scores_every_rule_on_the_pool_and_beats_video_alone():
    pool = _pool()
    probs = pool["probs"]
    video_alone = np.mean(probs["video"].argmax(1) == pool["labels"])
    choice = select_fusion(pool, num_classes=3, max_epochs=5, hidden=8)
    assert set(choice.scores) == set(RULE_ORDER)
    assert choice.pool == "out-of-fold + validation"
    assert choice.groups == {"a": 30, "b": 30, "c": 30}
    assert 1 <= choice.mlp_epochs <= 5
    assert choice.scores[choice.best] == max(choice.scores.values())
    assert choice.scores[choice.best] > video_alone + 0.2  # the other stream fixes class 2
    # the weights are chosen on the pool, exactly as choose_fusion_weight chooses them
    w = choose_fusion_weight(probs, pool["labels"])
    assert choice.weights == w and choice.weight == w["video"]
    assert choice.streams == ("video", "other")
    summary = choice.summary()
    assert summary["weight"] == w["video"] and summary["weights"] == w  # old field kept
    fused = apply_fusion(choice, probs, pool["embeddings"])
    assert set(fused) == {*RULE_ORDER, "best"}
    np.testing.assert_allclose(fused["best"], fused[choice.best])
    np.testing.assert_allclose(fused["learned"].sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="fuses the streams"):
        apply_fusion(choice, {"video": probs["video"]}, pool["embeddings"])


def test_select_fusion_of_three_streams_with_three_embeddings():
    pool = _pool(n_per_group=20)
    rng = np.random.default_rng(3)
    noise = rng.dirichlet(np.ones(3), size=60)
    pool["probs"]["noise"] = noise
    pool["embeddings"]["noise_embedding"] = noise
    choice = select_fusion(pool, num_classes=3, max_epochs=3, hidden=8)
    assert choice.streams == ("video", "other", "noise")
    assert sum(choice.weights.values()) == pytest.approx(1.0)
    assert choice.describe("weighted").startswith("weighted (video ")
    assert {t.name for t in choice.mlp.inputs} == {VIDEO_INPUT, SENSOR_INPUT, "noise_embedding"}
    fused = apply_fusion(choice, pool["probs"], pool["embeddings"])
    np.testing.assert_allclose(fused["weighted"], fuse_weighted(pool["probs"], choice.weights))


def test_select_fusion_without_embeddings_skips_the_learned_rule():
    pool = _pool()
    del pool["embeddings"]
    choice = select_fusion(pool, num_classes=3)
    assert "learned" not in choice.scores and choice.mlp is None
    assert set(apply_fusion(choice, pool["probs"])) == {"sum", "product", "max", "weighted", "best"}


def test_select_fusion_ties_prefer_parameter_free_rules():
    pool = _pool()
    pool["probs"]["other"] = pool["probs"]["video"].copy()  # nothing to gain: fixed rules tie
    choice = select_fusion(pool, num_classes=3, max_epochs=2, hidden=8)
    fixed = ("sum", "product", "max", "weighted")
    if choice.scores["learned"] <= choice.scores["sum"]:
        assert choice.best == "sum"
    assert len({choice.scores[r] for r in fixed}) == 1
    assert choice.weights == {"video": 0.5, "other": 0.5}


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
        train_features=train["embeddings"],
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
    del pool["probs"]
    with pytest.raises(ValueError, match="probs"):
        select_fusion(pool, num_classes=3)
    pool = _pool()
    pool["probs"]["other"] = pool["probs"]["other"][:, :2]
    with pytest.raises(ValueError, match="'video' and 'other' differ in class count"):
        select_fusion(pool, num_classes=3)


def test_fit_fusion_mlp_without_validation_runs_all_epochs_and_records_curves():
    pool = _pool()
    feats = pool["embeddings"]
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
