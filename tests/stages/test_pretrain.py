"""Self-supervised pretraining: the loss, the momentum update, which videos are read, the run it
writes, and loading it into the video stage (fine-tune and linear probe)."""

import json
import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import pretrain_video  # noqa: E402
import train_video  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from vsfusion.config import PretrainConfig  # noqa: E402
from vsfusion.data.views import ViewPairLoader  # noqa: E402
from vsfusion.models import build_backbone, split_classifier  # noqa: E402
from vsfusion.models.contrastive import MomentumContrast, info_nce  # noqa: E402
from vsfusion.stages.common import load_manifest, load_model, load_pretrained_trunk  # noqa: E402
from vsfusion.stages.pretrain import pretrain_rows  # noqa: E402

CLIP = ["--num_frames", "8", "--crop_size", "32"]


def tiny_moco(momentum: float = 0.9, queue_size: int = 0, channels: int = 1) -> MomentumContrast:
    shape = (8, 32, 32, channels)
    return MomentumContrast(
        build_backbone("i3d", shape),
        build_backbone("i3d", shape, name="i3d_key"),
        proj_dim=8,
        proj_hidden=16,
        momentum=momentum,
        queue_size=queue_size,
    )


def fixed_batch(b: int = 4) -> dict[str, np.ndarray]:
    """``b`` distinct smooth moving patterns; view 2 is view 1 with a little noise."""
    import cv2

    rng = np.random.default_rng(1)
    base = np.empty((b, 8, 32, 32, 1), "float32")
    for i in range(b):
        grid = rng.uniform(0, 255, (4, 4)).astype("float32")
        frame = cv2.resize(grid, (32, 32), interpolation=cv2.INTER_LINEAR)
        base[i] = np.stack([np.roll(frame, 2 * t, axis=1) for t in range(8)])[..., None]
    noisy = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype("float32")
    return {"view1": base, "view2": noisy}


# -- the loss ---------------------------------------------------------------------------------


def test_info_nce_matches_hand_computed_values():
    eye = np.eye(3, dtype="float32")
    loss = keras.ops.convert_to_numpy(info_nce(eye, eye, temperature=0.5))
    np.testing.assert_allclose(loss, math.log(math.exp(2) + 2) - 2, rtol=1e-5)
    # a negative identical to the positive halves the positive's share
    loss = keras.ops.convert_to_numpy(info_nce(eye, eye, eye[:1], temperature=0.5))
    np.testing.assert_allclose(loss[0], math.log(2 * math.exp(2) + 2) - 2, rtol=1e-5)
    np.testing.assert_allclose(loss[1], math.log(math.exp(2) + 3) - 2, rtol=1e-5)


def test_contrastive_loss_decreases_on_a_fixed_batch():
    model = tiny_moco(momentum=0.9)
    x = fixed_batch()
    model.calibrate_batchnorm(x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    losses = [float(model.train_on_batch(x)) for _ in range(12)]
    assert np.isfinite(losses).all()
    assert losses[0] < math.log(4)  # the key encoder starts as the query's copy: positives win
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses


# -- the momentum update ----------------------------------------------------------------------


def _perturb_keys(model: MomentumContrast) -> None:
    rng = np.random.default_rng(2)
    for _, k, averaged in model._pairs:
        if averaged:
            k.assign(keras.ops.convert_to_numpy(k) + rng.normal(0, 0.1, k.shape).astype("float32"))
        else:  # BN statistics: different from the query's, so the copy is visible
            k.assign(keras.ops.convert_to_numpy(k) + 0.5)


def _values(pairs):
    q = [np.array(keras.ops.convert_to_numpy(p[0])) for p in pairs]
    k = [np.array(keras.ops.convert_to_numpy(p[1])) for p in pairs]
    return q, k


def test_momentum_update_moves_key_weights_by_one_minus_m_times_q_minus_k():
    m = 0.9
    model = tiny_moco(momentum=m)
    assert not model.key_trunk.trainable and not model.key_projector.trainable
    trainable = {id(v) for v in model.trainable_variables}
    assert all(id(k) not in trainable for _, k, _ in model._pairs)
    assert all(id(q) in trainable for q, _, averaged in model._pairs if averaged)
    _perturb_keys(model)
    q0, k0 = _values(model._pairs)
    model.momentum_update()
    _, k1 = _values(model._pairs)
    for (_, _, averaged), q, k, new in zip(model._pairs, q0, k0, k1, strict=True):
        expected = k + (1 - m) * (q - k) if averaged else q
        np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-6)


def test_a_training_step_applies_the_momentum_update_to_the_pre_step_query():
    m = 0.5
    model = tiny_moco(momentum=m, queue_size=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    _perturb_keys(model)
    q0, k0 = _values(model._pairs)
    queue0 = keras.ops.convert_to_numpy(model.queue).copy()
    model.train_on_batch(fixed_batch())
    q1, k1 = _values(model._pairs)
    n_averaged = 0
    for (_, _, averaged), q, k, new in zip(model._pairs, q0, k0, k1, strict=True):
        if averaged:
            np.testing.assert_allclose(new, m * k + (1 - m) * q, rtol=1e-5, atol=1e-6)
            n_averaged += 1
    assert n_averaged > 10
    assert any(not np.allclose(a, b) for a, b in zip(q0, q1, strict=True))  # the query trained
    queue1 = keras.ops.convert_to_numpy(model.queue)
    np.testing.assert_allclose(queue1[8:], queue0[:8])  # 2 x 4 new keys pushed in front
    np.testing.assert_allclose(np.linalg.norm(queue1[:8], axis=1), 1.0, rtol=1e-5)


# -- the views --------------------------------------------------------------------------------


def test_views_are_deterministic_per_seed_epoch_batch_and_differ(tiny_dataset):
    manifest = load_manifest(PretrainConfig(dataset="VSL", data_root=str(tiny_dataset)))
    rows = manifest.split("train")
    a = ViewPairLoader(rows, manifest.classes, batch_size=4, num_frames=4, crop_size=32)
    b = ViewPairLoader(rows, manifest.classes, batch_size=4, num_frames=4, crop_size=32)
    x, y = a[1], b[1]
    assert set(x) == {"view1", "view2"} and x["view1"].shape == (4, 4, 32, 32, 3)
    assert x["view1"].dtype == np.float32 and 0 <= x["view1"].min() and x["view1"].max() <= 255
    np.testing.assert_array_equal(x["view1"], y["view1"])
    assert not np.allclose(x["view1"], x["view2"])
    assert len(a) == len(rows) // 4  # incomplete last batch dropped
    a.on_epoch_end()
    assert not np.allclose(a[1]["view1"], x["view1"])


# -- which videos -----------------------------------------------------------------------------


def test_test_split_is_used_only_when_transductive(tiny_dataset):
    cfg = PretrainConfig(dataset="VSL", data_root=str(tiny_dataset))
    manifest = load_manifest(cfg)
    ids = {s: set(manifest.split(s)["id"]) for s in ("train", "val", "test")}
    rows, counts = pretrain_rows(manifest, cfg)
    assert set(rows["id"]) == ids["train"]
    assert counts == {"train": len(ids["train"]), "val": 0, "test": 0}
    rows, counts = pretrain_rows(manifest, PretrainConfig(**{**vars(cfg), "include_val": True}))
    assert set(rows["id"]) == ids["train"] | ids["val"] and counts["test"] == 0
    rows, counts = pretrain_rows(manifest, PretrainConfig(**{**vars(cfg), "transductive": True}))
    assert set(rows["id"]) == ids["train"] | ids["test"] and counts["test"] == len(ids["test"])


@pytest.fixture(scope="module")
def pretrained(tiny_dataset, tmp_path_factory):
    """One pretraining epoch (i3d, 8x32x32), recording every video file the loader reads."""
    ck = tmp_path_factory.mktemp("ck")
    read: list[str] = []
    original = ViewPairLoader._read_view

    def recording(self, path, rng):
        read.append(path)
        return original(self, path, rng)

    ViewPairLoader._read_view = recording
    try:
        argv = [*common(tiny_dataset, ck), "--backbone", "i3d", *CLIP, "--batch_size", "4"]
        code = pretrain_video.main(
            [*argv, "--epoch", "1", "--proj_hidden", "16", "--proj_dim", "8", "--run_name", "p"]
        )
    finally:
        ViewPairLoader._read_view = original
    assert code == 0
    manifest = load_manifest(PretrainConfig(dataset="VSL", data_root=str(tiny_dataset)))
    return ck, ck / "VSL" / "pretrain" / "p", read, manifest


def test_one_epoch_writes_a_finished_run_from_training_videos_only(pretrained):
    ck, run, read, manifest = pretrained
    for name in ("config.yaml", "run.json", "metrics.json", "history.csv", "trunk.keras"):
        assert (run / name).is_file(), name
    assert (run / "trunk.weights.h5").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    n_train = len(manifest.split("train"))
    assert metrics["transductive"] is False and metrics["splits_used"] == ["train"]
    assert metrics["videos_per_split"] == {"train": n_train, "val": 0, "test": 0}
    assert len(metrics["loss"]) == 1 and np.isfinite(metrics["loss"][0])
    assert (ck / "VSL" / "pretrain" / "latest").read_text().strip() == "p"
    train_files = {str(p) for p in manifest.split("train")["video"]}
    other = {str(p) for s in ("val", "test") for p in manifest.split(s)["video"]}
    assert read and set(read) <= train_files and not set(read) & other
    ids = (run / "pretrain_ids.txt").read_text().splitlines()
    assert ids[0] == "split,id" and len(ids) == 1 + n_train
    assert all(line.startswith("train,") for line in ids[1:])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the loss per epoch
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))


# -- loading into the video stage -------------------------------------------------------------


def _trunk_outputs(trunk: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(trunk({"video": x}, training=False))


def test_pretrained_trunk_loads_into_a_classifier_by_layer_name(pretrained):
    _, run, _, _ = pretrained
    source = load_model(run / "trunk.keras")
    # another clip size than the pretraining one: convolution weights do not depend on it
    model = build_backbone("i3d", (10, 40, 40, 3), num_classes=3)
    info = load_pretrained_trunk(model, run / "trunk.keras")
    trunk, _ = split_classifier(model)
    weighted = [layer for layer in trunk.layers if layer.weights]
    assert info["pretrain_kind"] == "vsfusion" and info["pretrained_layers"] == len(weighted)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 32, 32, 3)).astype("float32")
    rebuilt = build_backbone("i3d", (8, 32, 32, 3))
    rebuilt.set_weights(trunk.get_weights())
    np.testing.assert_allclose(
        _trunk_outputs(rebuilt, x), _trunk_outputs(source, x), rtol=1e-5, atol=1e-5
    )


def test_linear_probe_leaves_the_pretrained_trunk_unchanged(pretrained, tiny_dataset):
    ck, run, _, _ = pretrained
    argv = [*common(tiny_dataset, ck), "--backbone", "i3d", *CLIP, "--batch_size", "4"]
    code = train_video.main(
        [*argv, "--epoch", "2", "--pretrain", str(run), "--freeze_trunk", "--run_name", "probe"]
    )
    assert code == 0
    video_run = ck / "VSL" / "video" / "probe"
    metrics = json.loads((video_run / "metrics.json").read_text())
    assert metrics["pretrain"] == str(run) and metrics["freeze_trunk"] is True
    trunk, head = split_classifier(load_model(video_run / "best.keras"))
    source = load_model(run / "trunk.keras")
    assert metrics["pretrained_layers"] == len([layer for layer in trunk.layers if layer.weights])
    for a, b in zip(trunk.get_weights(), source.get_weights(), strict=True):  # BN stats too
        np.testing.assert_array_equal(a, b)
    assert head.get_weights()  # the head trained (exists) while the trunk stayed put


@pytest.mark.parametrize(
    "pretrain,backbone,message",
    [
        ("MISSING/run", "x3d_xs", "does not exist or is not a run folder; pass a pretrain_video"),
        ("MISSING/w.h5", "x3d_xs", "drop --pretrain or use --backbone i3d"),
        ("MISSING/w.h5", "i3d", "does not exist; pass a Kinetics-style I3D .h5"),
        ("RUN", "x3d_xs", "holds a i3d trunk but --backbone is x3d_xs; use --backbone i3d"),
        ("RUN/trunk.keras", "r2plus1d_18", "holds a i3d trunk but --backbone is r2plus1d_18"),
        ("EMPTY", "x3d_xs", "is not a finished pretrain run (no trunk.keras/metrics.json)"),
    ],
)
def test_bad_pretrain_is_one_line_error_and_leaves_no_run(
    pretrain, backbone, message, pretrained, tiny_dataset, tmp_path, capsys
):
    _, run, _, _ = pretrained
    (tmp_path / "EMPTY").mkdir()
    for name, value in (("RUN", run), ("EMPTY", tmp_path / "EMPTY"), ("MISSING", tmp_path)):
        pretrain = pretrain.replace(name, str(value))
    path = pretrain
    ck = tmp_path / "ck"
    argv = [*common(tiny_dataset, ck), "--backbone", backbone, "--num_frames", "8"]
    code = train_video.main([*argv, "--crop_size", "32", "--epoch", "1", "--pretrain", path])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and message in err[0], err[0]
    assert not (ck / "VSL" / "video").exists() or not any((ck / "VSL" / "video").iterdir())


def test_mismatched_i3d_weights_file_is_one_line_error_and_leaves_no_run(
    tiny_dataset, tmp_path, capsys
):
    import h5py

    path = tmp_path / "w.h5"  # Keras 2 layout, but the stem kernel is 3x3x3 instead of 7x7x7
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"Conv3d_1a_7x7_conv"]
        group = f.create_group("Conv3d_1a_7x7_conv")
        group.attrs["weight_names"] = [b"Conv3d_1a_7x7_conv/kernel:0"]
        group.create_dataset("Conv3d_1a_7x7_conv/kernel:0", data=np.zeros((3, 3, 3, 3, 64)))
    ck = tmp_path / "ck"
    argv = [*common(tiny_dataset, ck), "--backbone", "i3d", *CLIP, "--epoch", "1"]
    code = train_video.main([*argv, "--run_name", "r", "--pretrain", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: --pretrain {path}: ") and "does not match" in err[0], err[0]
    assert "Conv3d_1a_7x7_conv: file [(3, 3, 3, 3, 64)]" in err[0], err[0]
    video = ck / "VSL" / "video"
    assert video.is_dir() and not any(video.iterdir())  # the run was started, then removed


def test_channel_mismatch_is_one_line_error_naming_the_file(pretrained, tmp_path):
    from vsfusion.stages.common import StageError

    _, run, _, _ = pretrained
    model = build_backbone("i3d", (8, 32, 32, 1), num_classes=3)  # depth, pretrained on RGB
    with pytest.raises(StageError, match=r"trunk.keras does not fit trunk i3d_trunk") as exc:
        load_pretrained_trunk(model, run)
    assert "\n" not in str(exc.value) and "--video-modality" in str(exc.value)
