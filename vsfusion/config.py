"""Stage configuration: one commented dataclass per stage, argparse and YAML generated from the fields.

Every field has a default and a ``help`` string. ``build_parser(VideoConfig)`` turns the fields into
flags (``--batch_size 8``); booleans become ``--flag / --no-flag`` pairs (never ``type=bool``, which
turns ``--pretrain False`` into True); optional paths accept ``none`` and also get a ``--no-<name>``
flag. ``--config run.yaml`` overrides the defaults and the command line overrides the YAML; YAML values
are converted to each field's type as the command line converts its text (``lr: 1e-4``, which YAML
1.1 reads as a string, becomes the float 1e-4).

Errors are exceptions, never ``SystemExit``: a bad ``--config`` file is a :class:`ConfigError` with a
one-line message that :func:`vsfusion.cli.run_cli` prints as ``error: ...`` (exit code 2). Only the
argparse parser itself exits, with one ``error:`` line and code 2, as argparse does.

Example:
    >>> cfg = parse_config(SensorConfig, ["--dataset", "demo", "--epoch", "3"])
    >>> cfg.epoch
    3
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vsfusion.inference.predictor import ENGINES

__all__ = [
    "ConfigError",
    "StageConfig",
    "TrainingConfig",
    "ClassifierConfig",
    "BaselinesConfig",
    "VideoConfig",
    "PretrainConfig",
    "SensorConfig",
    "StreamConfig",
    "GeneratorConfig",
    "FusionConfig",
    "ReproduceConfig",
    "TuneOptions",
    "VideoTuneConfig",
    "SensorTuneConfig",
    "StreamTuneConfig",
    "TUNE_CONFIGS",
    "ExportConfig",
    "PredictConfig",
    "ServeConfig",
    "build_parser",
    "parse_config",
    "config_to_yaml",
    "load_yaml_overrides",
]

C = TypeVar("C", bound="StageConfig")

# --distribute of the training stages (vsfusion.stages.distribute implements them)
DISTRIBUTE_CHOICES = ("none", "auto", "mirrored", "multiworker", "data_parallel")


class ConfigError(ValueError):
    """A configuration a user can fix (a bad ``--config`` file or value); the message is one line
    naming the file, the option and the fix."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class StageConfig:
    """Fields every stage shares: data, output, seed and the optimisation loop."""

    dataset: str = _f("demo", "dataset name (see vsfusion.data.DATASETS)")
    data_root: str | None = _f(None, "dataset folder; default data/<dataset>", aliases=("--root",))
    cache_dir: str | None = _f(
        None, "preprocessed cache folder for native datasets; default cache/<dataset>"
    )
    video_modality: str | None = _f(
        None, "video stream of datasets with several (UTD-MHAD: rgb or depth)"
    )
    protocol: str | None = _f(None, "evaluation protocol of the dataset; default: its standard one")
    video_crop: str | None = _f(
        None,
        "spatial crop of the video cache: centre, or person (depth: nearest depth band; RGB: "
        "motion); a separate cache; default: the dataset's (centre)",
        choices=("centre", "person"),
    )
    subject_pattern: str | None = _f(
        None,
        "folder dataset: regex with a (?P<subject>...) group on file names; default: prefix before '_'",
    )
    prep_workers: int = _f(2, "worker processes for dataset preparation (decoding, resampling)")
    checkpoints: str = _f("checkpoints", "output root; runs go to <checkpoints>/<dataset>/<stage>/")
    run_name: str | None = _f(None, "run directory name; default <time>_seed<seed>")
    seed: int = _f(0, "random seed (data split, initialisation, shuffling, augmentation)")
    val_fraction: float = _f(0.25, "fraction of training subjects carved out for validation")
    subjects: str | None = _f(
        None,
        "subject splits instead of the protocol's, e.g. 'train=1,3 val=5 test=7' (unlisted "
        "subjects are left out), for cross-validation over the subjects you tune on; choose "
        "nothing by a subject you report as test",
    )
    batch_size: int = _f(8, "batch size")
    epoch: int = _f(10, "maximum number of training epochs")
    lr: float = _f(1e-3, "learning rate")
    patience: int = _f(10, "early stopping patience in epochs (on the validation split)")
    workers: int = _f(1, "loader worker threads (keras PyDataset workers)")
    verbose: int = _f(2, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch")

    stage: typing.ClassVar[str] = "stage"


@dataclass
class TrainingConfig(StageConfig):
    """Stages that fit networks (classifiers, pretraining, generator): what they log while training."""

    tensorboard: bool = _f(
        True,
        "write loss, metrics and learning rate per epoch as TensorBoard event files under "
        "<run>/tensorboard/ (view with: tensorboard --logdir <checkpoints>; the tensorboard "
        "package itself is not needed to write them); curves.png is written either way",
    )
    batch_size: int = _f(
        8, "batch size (the global batch: with --distribute, split evenly over the replicas)"
    )
    distribute: str = _f(
        "none",
        "data-parallel training over several devices: mirrored (TensorFlow, the GPUs or logical "
        "devices of this machine), multiworker (TensorFlow, the machines of TF_CONFIG), "
        "data_parallel (JAX, keras.distribution over all devices), auto (what the backend offers "
        "over the visible devices; none with one device), none; --batch_size is then the global "
        "batch, split evenly over the replicas",
        choices=DISTRIBUTE_CHOICES,
    )
    resume: str | None = _f(
        None,
        "continue a killed run from its last finished epoch: --resume alone takes the newest "
        "killed run of this stage (and --run_name, if given) whose config.yaml matches these "
        "options (verbose, workers, checkpoints, tensorboard may differ); --resume PATH that run "
        "(its .<name>.incomplete folder or final path). Finished runs are never touched",
        const="auto",
        record=False,
    )


@dataclass
class ScheduledConfig(TrainingConfig):
    """Stages trained with a learning-rate schedule (see ``stages.common.learning_rate``)."""

    schedule: str = _f(
        "constant",
        "learning-rate schedule: constant, or cosine (linear warm-up, then cosine decay to 0 at the last epoch)",
        choices=("constant", "cosine"),
    )
    warmup_epochs: float = _f(1.0, "warm-up epochs of the cosine schedule")


@dataclass
class ClassifierConfig(ScheduledConfig):
    """Fields of the single-modality classifier stages: schedule, label smoothing, final fit."""

    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy, in [0, 1)")
    final_fit: bool = _f(
        False,
        "after choosing the epoch count on validation, retrain on training + validation subjects "
        "for that many epochs and report test metrics of the refit model (leave off when a later "
        "stage needs validation predictions the model has not seen)",
    )


@dataclass
class BaselinesConfig(StageConfig):
    """Stage 0: classical scikit-learn reference models chosen by leave-one-subject-out (train_baselines.py)."""

    streams: str = _f(
        "sensor,video,skeleton",
        "comma-separated baseline rows: sensor (summary statistics), video (depth motion maps "
        "or RGB motion images), skeleton (summary statistics of the normalised joint "
        "trajectories); a modality the dataset lacks is skipped",
    )
    n_trees: int = _f(
        300, "trees of the random forest candidates (300 keeps UTD-MHAD within 2 min on 2 cores)"
    )
    n_jobs: int = _f(2, "parallel fits of the leave-one-subject-out search (CPU cores)")

    stage: typing.ClassVar[str] = "baselines"


@dataclass
class VideoConfig(ClassifierConfig):
    """Stage 1a: the video classifier, I3D or a lighter backbone (train_video.py)."""

    backbone: str = _f(
        "i3d",
        "video trunk: i3d (paper), x3d_xs / x3d_s (light), r2plus1d_18",
        choices=("i3d", "x3d_xs", "x3d_s", "r2plus1d_18"),
    )
    num_frames: int = _f(16, "frames sampled per clip")
    crop_size: int = _f(64, "square crop size in pixels (random at training, centre at test)")
    frame_size: int | None = _f(
        None,
        "resize cached frames so their shorter side is this before cropping (lower resolution, "
        "same field of view); none keeps the cached size",
    )
    pretrain: str | None = _f(
        None,
        "trunk initialisation: a pretrain_video.py run (folder or its trunk.keras; same backbone), "
        "or Kinetics-style I3D weights .h5 loaded by layer name (i3d backbone), or none",
    )
    freeze_trunk: bool = _f(
        False,
        "linear probe: the trunk is frozen (BatchNorm in inference mode), only the head trains",
    )
    dropout: float = _f(0.5, "dropout before the classifier")
    optimizer: str = _f("adam", "optimizer", choices=("adam", "sgd"))
    flip: bool = _f(True, "random horizontal flip at training time")
    scale_jitter: float = _f(
        0.0, "training crop side varies by up to this factor around crop_size (0.25: x0.8..x1.25)"
    )
    erase_prob: float = _f(0.0, "probability of random erasing of a training clip")
    mixup: float = _f(0.0, "mixup Beta(alpha, alpha) parameter for training batches; 0 is off")
    epoch: int = _f(15, "maximum number of training epochs")

    stage: typing.ClassVar[str] = "video"


@dataclass
class PretrainConfig(ScheduledConfig):
    """Self-supervised pretraining of the video trunk by momentum contrast (pretrain_video.py).

    Uses the training split only unless ``--include_val`` (validation subjects, never test
    subjects) or ``--transductive`` (also the test videos, unlabeled) say otherwise; the splits and
    video counts used are recorded in the run's metrics.json and pretrain_ids.txt.
    """

    backbone: str = _f(
        "i3d",
        "video trunk: i3d, x3d_xs, x3d_s, r2plus1d_18 (the video stage must use the same)",
        choices=("i3d", "x3d_xs", "x3d_s", "r2plus1d_18"),
    )
    num_frames: int = _f(16, "frames per view")
    crop_size: int = _f(64, "square crop size of each view in pixels")
    batch_size: int = _f(
        8,
        "videos per batch (two views each; the last incomplete batch is dropped); the global "
        "batch: with --distribute, split evenly over the replicas",
    )
    epoch: int = _f(50, "pretraining epochs")
    lr: float = _f(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = _f(1e-4, "AdamW weight decay")
    schedule: str = _f(
        "cosine",
        "learning-rate schedule: constant, or cosine (linear warm-up, then cosine decay to 0)",
        choices=("constant", "cosine"),
    )
    warmup_epochs: float = _f(2.0, "warm-up epochs of the cosine schedule")
    temperature: float = _f(0.2, "InfoNCE temperature")
    momentum: float = _f(0.99, "momentum of the key encoder (exponential moving average)")
    proj_dim: int = _f(128, "width of the projected (contrasted) embedding")
    proj_hidden: int = _f(512, "hidden units of the projection and prediction MLPs")
    predictor: bool = _f(
        False, "MoCo v3 prediction MLP on the query branch (off: positives favoured from step 1)"
    )
    queue_size: int = _f(
        0, "MoCo queue of negative keys; 0 = in-batch negatives only (robust on small datasets)"
    )
    min_window: float = _f(
        0.5, "each view samples a random temporal window of this fraction (or more) of the video"
    )
    min_scale: float = _f(0.3, "smallest area fraction of the random-resized crop")
    include_val: bool = _f(
        False, "also pretrain on the validation subjects' videos (not test subjects)"
    )
    transductive: bool = _f(
        False,
        "also pretrain on the TEST videos (unlabeled); recorded in the run; not for reported numbers",
    )

    stage: typing.ClassVar[str] = "pretrain"


@dataclass
class SensorConfig(ClassifierConfig):
    """Stage 1b: the InceptionTime sensor classifier (train_sensor.py)."""

    sensor_steps: int | None = _f(
        None, "resample every recording to this many steps; none keeps them"
    )
    augment: bool = _f(True, "augment training recordings (rotation, time-warp, gain, jitter)")
    rotate_deg: float = _f(15.0, "largest random rotation of each sensor unit, in degrees")
    unit_channels: int | None = _f(
        None,
        "channels per rigid sensor unit rotated together (6: acc xyz + gyro xyz; 3: acc only; "
        "0: no rotation); default the dataset's SENSOR_UNIT_CHANNELS, else no rotation",
    )
    time_warp: float = _f(0.2, "standard deviation of the smooth time-warp's speed; 0 is off")
    gain: float = _f(0.1, "standard deviation of the per-channel gain around 1; 0 is off")
    jitter: float = _f(0.05, "noise standard deviation as a fraction of the channel's; 0 is off")
    depth: int = _f(6, "number of inception modules")
    filters: int = _f(32, "filters per inception branch (embedding = 4 x filters x segments)")
    segments: int = _f(
        1, "pool the features over this many equal time segments (1: global average pooling)"
    )
    stats: bool = _f(
        False,
        "also feed the classifier per-channel mean/std/min/max of the normalised recording, whole "
        "and per segment, next to the learned features",
    )
    dropout: float = _f(0.2, "dropout before the classifier")
    batch_size: int = _f(16, "batch size (global: with --distribute, split over the replicas)")
    epoch: int = _f(60, "maximum number of training epochs")
    patience: int = _f(15, "early stopping patience in epochs (on the validation split)")

    stage: typing.ClassVar[str] = "sensor"


@dataclass
class StreamConfig(ClassifierConfig):
    """Stage 1c: a classifier for any sequence stream (skeleton, pose, a registered kind), with the
    trunk its kind names (train_stream.py)."""

    stream: str = _f(
        "skeleton", "the stream to classify: a manifest column or a kind (e.g. skeleton, inertial)"
    )
    trunk: str | None = _f(None, "trunk (see vsfusion.models.trunks.TRUNKS); default: the kind's")
    length: int | None = _f(
        32, "resample every sequence to this many steps (skeleton frames); none keeps them"
    )
    width: int | None = _f(None, "width knob of the trunk (channels / filters); default: its own")
    augment: bool = _f(True, "the kind's training augmentation (skeleton: rotation and scale)")
    flip: bool = _f(
        False,
        "left-right mirror of training samples (when the stream can mirror); only where a "
        "mirrored sample keeps its class (not UTD-MHAD: swipe left/right)",
    )
    dropout: float = _f(0.3, "dropout before the classifier")
    batch_size: int = _f(16, "batch size (global: with --distribute, split over the replicas)")
    epoch: int = _f(60, "maximum number of training epochs")
    patience: int = _f(15, "early stopping patience in epochs (on the validation split)")

    stage: typing.ClassVar[str] = "stream"


@dataclass
class GeneratorConfig(TrainingConfig):
    """Stage 2: the generator from video to the sensor embedding (training_generator.py)."""

    model_path: str | None = _f(
        None, "sensor run directory or .keras checkpoint; default: latest sensor run"
    )
    video_model_path: str | None = _f(
        None, "video run directory or .keras; default: latest video run"
    )
    trunk: str = _f(
        "shared",
        "generator trunk: shared (frozen video trunk, one I3D pass at test), "
        "finetune (copy of the video trunk, trained; use --lr 1e-4), scratch (new I3D, --pretrain optional)",
        choices=("shared", "finetune", "scratch"),
    )
    backbone: str | None = _f(
        None,
        "trunk of --trunk scratch: i3d, x3d_xs, x3d_s, r2plus1d_18; default the video run's",
    )
    pretrain: str | None = _f(
        None, "--trunk scratch: a pretrain_video.py run (same backbone) or I3D weights .h5, or none"
    )
    num_frames: int | None = _f(None, "frames per clip; default: the video run's")
    crop_size: int | None = _f(None, "crop size; default: the video run's")
    hidden: int = _f(512, "hidden units of the generator head")
    dropout: float = _f(0.2, "dropout in the generator head")
    huber_weight: float = _f(1.0, "weight of the Huber loss between generated and real embedding")
    norm_weight: float = _f(0.1, "weight of the per-sample norm matching loss")
    ce_weight: float = _f(0.5, "weight of the cross-entropy of the frozen sensor head")
    huber_delta: float = _f(1.0, "Huber delta")
    sources: str | None = _f(
        None,
        "streams the generator reads, available at test time (columns or kinds, comma-separated, "
        "e.g. depth,skeleton); default: video. Other than video -> sensor: --method regress on "
        "the frozen trunks of each stream's classifier run",
        aliases=("--from",),
    )
    target: str | None = _f(
        None,
        "the stream it synthesises (column or kind, e.g. inertial); default: sensor",
        aliases=("--to",),
    )
    stream_runs: str | None = _f(
        None,
        "with --from/--to: classifier run of each stream, e.g. skeleton=RUN,video=RUN (default: "
        "--model_path for the target, --video_model_path for video, else the stream's latest run)",
        aliases=("--runs",),
    )
    method: str = _f(
        "regress",
        "regress (a head regresses the sensor embedding from the --trunk's video embedding), "
        "privileged (a video network trained on labels with an auxiliary head that regresses the "
        "sensor embedding and matches the sensor head's tempered predictions; --trunk scratch or "
        "finetune), cmc (a copy of the video trunk first aligned with the sensor embedding by "
        "cross-modal InfoNCE, then frozen under a regress head)",
        choices=("regress", "privileged", "cmc"),
    )
    control: bool = _f(
        True,
        "also train the matching control without any sensor target (another seed): a head of the "
        "generator's size on the same frozen embedding (shared trunk, video_head_control) or a "
        "second video network of the same architecture and budget (own trunk, video_ensemble)",
    )
    kd_temperature: float = _f(4.0, "privileged: temperature of the sensor head's soft targets")
    kd_weight: float = _f(
        1.0, "privileged: weight of the soft-target cross-entropy (multiplied by temperature^2)"
    )
    cmc_temperature: float = _f(0.1, "cmc: temperature of the cross-modal InfoNCE logits")
    cmc_dim: int = _f(128, "cmc: width of the shared projection space")
    cmc_ce_weight: float = _f(
        1.0, "cmc: weight of the label cross-entropy beside InfoNCE while aligning the trunk"
    )
    epoch: int = _f(60, "maximum number of training epochs")
    patience: int = _f(15, "early stopping patience in epochs (on the validation split)")
    batch_size: int = _f(16, "batch size (global: with --distribute, split over the replicas)")

    stage: typing.ClassVar[str] = "generator"


@dataclass
class FusionConfig(StageConfig):
    """Stage 3: late fusion of video and generated sensor streams, evaluated on test (valid_generator.py)."""

    model_path: str | None = _f(None, "generator run directory; default: latest generator run")
    out: str | None = _f(None, "also write results.json / results.md here")
    mlp_hidden: int = _f(256, "hidden units of the learned fusion MLP")
    mlp_epochs: int = _f(
        200,
        "epochs of the learned fusion MLP's held-out curves (its epoch count is chosen on them)",
    )
    batch_size: int = _f(16, "batch size for feature extraction")
    oof: str | None = _f(
        None,
        "comma-separated generator runs, each trained with some training subjects held out as its "
        "test split (reproduce.py --oof_folds makes them): their out-of-fold predictions are pooled "
        "with validation to choose the fusion; default: validation only",
    )

    stage: typing.ClassVar[str] = "fusion"


@dataclass
class ReproduceConfig(StageConfig):
    """All stages in order, writing <out>/results.json and <out>/results.md (reproduce.py)."""

    out: str = _f("runs/demo", "output folder (results and, under checkpoints/, the stage runs)")
    seeds: str | None = _f(
        None,
        "comma-separated seeds (e.g. 0,1,2): run the pipeline once per seed in <out>/seed<N>/ and "
        "write mean +- sd of every row to <out>/results_seeds.{json,md}; overrides --seed",
    )
    stages: str = _f(
        "baselines,sensor,video,generator,fusion", "comma-separated subset of stages to run"
    )
    preset: str = _f("fast", "hyper-parameter preset", choices=("fast", "paper"))
    pretrain: str | None = _f(None, "I3D weights .h5 for the video stage, or none")
    backbone: str | None = _f(
        None,
        "video trunk (i3d, x3d_xs, x3d_s, r2plus1d_18); default the preset's (i3d)",
    )
    final_fit: bool | None = _f(
        None,
        "refit the sensor and video classifiers on training + validation subjects for the epochs "
        "chosen on validation; default: on when neither the generator nor the fusion stage is run "
        "(they need validation predictions the classifiers have not seen)",
    )
    method: str | None = _f(
        None,
        "generator method (regress, privileged, cmc; see training_generator.py); default the "
        "preset's (regress)",
    )
    trunk: str | None = _f(
        None, "generator trunk (shared, finetune, scratch); default the method's preset"
    )
    oof_folds: int | None = _f(
        None,
        "fusion selection on out-of-fold predictions: train sensor, video and generator this many "
        "more times, each with a group of training subjects held out (in <out>/folds/), and pool "
        "their predictions on the held-out subjects with validation; 0: validation only; default "
        "the preset's (2)",
    )
    aggregate: str | None = _f(
        None,
        "train nothing: aggregate these finished fusion runs (comma-separated, one per seed) into "
        "<out>/results_seeds.md with the exact McNemar tests pooled over them",
    )

    stage: typing.ClassVar[str] = "reproduce"


@dataclass
class TuneOptions:
    """Fields of a hyper-parameter search (tune.py), added to those of the stage it tunes."""

    trials: int = _f(
        10, "trials (configurations trained and scored on validation); hyperband: at most this many"
    )
    tuner: str = _f(
        "random",
        "search: random, bayesian (Gaussian-process Bayesian optimisation), hyperband (successive "
        "halving of the epoch budget up to --epoch; each trial trains from scratch)",
        choices=("random", "bayesian", "hyperband"),
    )
    space: str | None = _f(
        None,
        "search space, comma-separated NAME=SPEC: LO:HI (uniform), LO:HI:log, LO:HI:STEP, A|B|C "
        "(choices) or V (fixed), e.g. lr=1e-4:1e-2:log,dropout=0.1:0.6; only what is named is "
        "searched; default: the stage's default space (tune.py --stage S --help lists both)",
    )
    hyperband_factor: int = _f(3, "hyperband: factor by which each round cuts the trials")


@dataclass
class VideoTuneConfig(TuneOptions, VideoConfig):
    """Hyper-parameter search for the video stage on validation only (tune.py --stage video)."""

    stage: typing.ClassVar[str] = "tune_video"
    tunes: typing.ClassVar[type[StageConfig]] = VideoConfig


@dataclass
class SensorTuneConfig(TuneOptions, SensorConfig):
    """Hyper-parameter search for the sensor stage on validation only (tune.py --stage sensor)."""

    stage: typing.ClassVar[str] = "tune_sensor"
    tunes: typing.ClassVar[type[StageConfig]] = SensorConfig


@dataclass
class StreamTuneConfig(TuneOptions, StreamConfig):
    """Hyper-parameter search for a stream's classifier on validation only (tune.py --stage
    stream)."""

    stage: typing.ClassVar[str] = "tune_stream"
    tunes: typing.ClassVar[type[StageConfig]] = StreamConfig


TUNE_CONFIGS: dict[str, type[StageConfig]] = {
    "video": VideoTuneConfig,
    "sensor": SensorTuneConfig,
    "stream": StreamTuneConfig,
}
"""Stage name (``tune.py --stage``) -> configuration of its search."""


@dataclass
class ExportConfig:
    """Export a trained model to SavedModel, ONNX or LiteRT and check it against Keras (export.py).

    The export is written to a temporary folder next to ``--out``, checked on clips of the run's
    validation split (max absolute difference of the probabilities, top-1 agreement), and only
    then renamed to ``--out``; an existing export is kept unless ``--force``.
    """

    run: str | None = _f(
        None,
        "a run folder (its deploy.keras, else best.keras) or a .keras file",
        positional=True,
    )
    format: str = _f(
        "onnx",
        "savedmodel (TensorFlow SavedModel), onnx (ONNX Runtime) or litert (LiteRT / TFLite)",
        choices=("savedmodel", "onnx", "litert"),
    )
    out: str | None = _f(None, "output folder; default <run>/export/<format>[_<quantize>]")
    force: bool = _f(False, "replace an existing export at --out")
    quantize: str = _f(
        "none",
        "litert only: none (float32), dynamic (int8 weights) or int8 (int8 weights and "
        "activations, calibrated on clips of the run's training split)",
        choices=("none", "dynamic", "int8"),
    )
    samples: int = _f(
        16, "clips of the run's validation split on which the export is compared with Keras"
    )
    calibration: int = _f(32, "--quantize int8: training clips that calibrate the activations")
    tolerance: float = _f(
        1e-4,
        "largest max absolute difference of probabilities a float32 export may have from Keras "
        "(a larger one is an error and nothing is written)",
    )
    data_root: str | None = _f(
        None, "the run's dataset folder, if it moved; default: the one in the run's config.yaml"
    )
    verbose: int = _f(1, "0: warnings and errors only; 1: also progress and info lines")

    stage: typing.ClassVar[str] = "export"


#: What predict.py and serve.py take as the model.
_FUSION_RUN_HELP = (
    "a fusion run (checkpoints/<dataset>/fusion/<run>, or that folder / its latest for the "
    "newest run) or its deploy.keras"
)
_ENGINE_HELP = (
    "what runs the model: keras, or onnx (ONNX Runtime on the run's ONNX export from export.py; "
    "starts without TensorFlow); auto takes the ONNX export when the run has one"
)


@dataclass
class PredictConfig:
    """Class probabilities of new videos (and sensor recordings) from a fusion run (predict.py)."""

    input: str | None = _f(
        None,
        "a video file, a folder of videos (searched recursively), a cached clip .npy, or a "
        "webcam index (0 is the first camera)",
        positional=True,
    )
    model: str | None = _f(
        None,
        _FUSION_RUN_HELP,
        aliases=("--model_path",),
    )
    sensor: str | None = _f(
        None,
        "a sensor recording (.csv or .npy) of the video: predicts with video + real sensor "
        "(deploy_sensor.keras) instead of video + generated sensor",
    )
    engine: str = _f("auto", _ENGINE_HELP, choices=ENGINES)
    top_k: int = _f(5, "classes printed (and written) per video, most probable first")
    out: str | None = _f(
        None, "write the predictions to this .json or .csv file (comma-separated for both)"
    )
    seconds: float = _f(3.0, "webcam: length of the clip recorded, in seconds")
    verbose: int = _f(1, "0: warnings and errors only; 1: also progress and info lines")

    stage: typing.ClassVar[str] = "predict"


@dataclass
class ServeConfig:
    """A page in the browser that names the action of an uploaded clip or the webcam (serve.py)."""

    run: str | None = _f(
        None,
        _FUSION_RUN_HELP,
        positional=True,
    )
    sensor: str | None = _f(
        None,
        "a sensor recording (.csv or .npy) used with every clip and the webcam unless an upload "
        "brings its own: the page then shows the video + sensor model's top 5 too",
    )
    engine: str = _f("auto", _ENGINE_HELP, choices=ENGINES)
    host: str = _f("127.0.0.1", "address to listen on; 127.0.0.1 keeps the page to this machine")
    port: int = _f(8000, "port to listen on (0: a free one)")
    max_upload_mb: float = _f(50.0, "largest upload (video and sensor together), in MB")
    every: int = _f(4, "webcam: predict every this many frames (when the model keeps up)")
    verbose: int = _f(1, "0: warnings and errors only; 1: also start-up and request lines")

    stage: typing.ClassVar[str] = "serve"


# ---------------------------------------------------------------------------------------------
# argparse / YAML plumbing


def _base_type(tp: Any) -> tuple[type, bool]:
    """Return (python type, optional?) for a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _none_or(conv: type) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else conv(text)

    parse.__name__ = conv.__name__
    return parse


class _OneLineParser(argparse.ArgumentParser):
    """Reports a bad command line as one ``error:`` line (exit code 2); ``--help`` shows usage."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def build_parser(cls: type[StageConfig], description: str | None = None) -> argparse.ArgumentParser:
    """Build an ``argparse`` parser whose flags are the fields of ``cls``.

    Args:
        cls: a ``StageConfig`` subclass.
        description: parser description; defaults to the class docstring.

    Returns:
        The parser; every option's default is ``argparse.SUPPRESS`` so that only the flags actually
        given override the YAML file and the dataclass defaults.
    """
    parser = _OneLineParser(
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="YAML file overriding the defaults (flags override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(hints[f.name])
        meta = f.metadata
        help_text = f"{meta.get('help', '')} (default: {f.default})"
        if meta.get("positional"):  # e.g. predict.py INPUT; optional, so --config may give it
            parser.add_argument(f.name, nargs="?", type=tp, help=help_text, metavar=f.name.upper())
            continue
        flags = [f"--{f.name}"]
        if "_" in f.name:  # --video-modality works as well as --video_modality
            flags.append(f"--{f.name.replace('_', '-')}")
        flags.extend(meta.get("aliases", ()))
        if tp is bool:
            parser.add_argument(
                *flags, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text
            )
            continue
        kwargs: dict[str, Any] = {"help": help_text, "dest": f.name}
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "const" in meta:  # the flag alone means ``const`` (--resume)
            kwargs.update(nargs="?", const=meta["const"])
        kwargs["type"] = _none_or(tp) if optional else tp
        kwargs["metavar"] = "PATH_OR_NONE" if optional and tp is str else None
        if "const" in meta:
            kwargs["metavar"] = "PATH"
        parser.add_argument(*flags, **kwargs)
        if optional:
            parser.add_argument(
                f"--no-{f.name}",
                dest=f.name,
                action="store_const",
                const=None,
                help=f"set {f.name} to none",
            )
    return parser


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


def _convert_yaml_value(f: dataclasses.Field, hint: Any, value: Any, path: Path) -> Any:
    """``value`` of option ``f`` as the field's type, as the command line would convert its text.

    Raises:
        ConfigError: One line naming the file, the option, the value and the expected type.
    """
    tp, optional = _base_type(hint)
    expected = f"{tp.__name__} or none" if optional else tp.__name__
    choices = f.metadata.get("choices")

    def bad(why: str = "") -> ConfigError:
        return ConfigError(
            f"{path}: option {f.name}: {value!r} is not {why or 'a valid ' + expected}; "
            "fix the value in the file"
        )

    if value is None or (
        optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "")
    ):
        if optional:
            return None
        raise bad()
    if isinstance(value, (list, dict, set, tuple)):
        raise bad()
    try:
        if tp is bool:
            if isinstance(value, bool):
                out: Any = value
            elif isinstance(value, int) and value in (0, 1):
                out = bool(value)
            elif isinstance(value, str):
                out = _bool(value)
            else:
                raise ValueError(value)
        elif tp in (int, float):
            if isinstance(value, bool):  # YAML "yes" is not a number
                raise ValueError(value)
            if isinstance(value, tp):
                out = value
            elif tp is float and isinstance(value, int):
                out = float(value)
            else:  # the text the command line would have parsed ("1e-4", "8")
                out = tp(str(value).strip())
        elif tp is str:
            out = value if isinstance(value, str) else str(value)
        else:  # pragma: no cover - every field is bool, int, float or str
            out = tp(value)
    except (TypeError, ValueError):
        raise bad() from None
    if choices and out not in choices:
        raise bad(f"one of {', '.join(map(str, choices))}")
    return out


def load_yaml_overrides(cls: type[C], path: str | Path) -> dict[str, Any]:
    r"""Read a YAML mapping of field overrides, each converted to its field's type.

    A run's own ``config.yaml`` (``stage:`` first) is accepted for the same stage.

    Raises:
        ConfigError: One line naming the file, when it is missing, is not a YAML mapping, belongs to
            another stage, has unknown options or a value that does not convert to the option's
            type (e.g. ``epoch: ten``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.yaml"
        >>> _ = path.write_text("lr: 1e-4\nepoch: 3\n")
        >>> load_yaml_overrides(SensorConfig, path)
        {'lr': 0.0001, 'epoch': 3}
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; pass an existing YAML file to --config"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid YAML ({exc.__class__.__name__}); fix the file"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value")
    stage = data.pop("stage", None)  # a run's config.yaml names its stage first
    # a search (tune.py) also starts from a config of the stage it tunes, e.g. its best.yaml
    tuned = getattr(getattr(cls, "tunes", None), "stage", None)
    if stage is not None and stage not in (getattr(cls, "stage", stage), tuned):
        raise ConfigError(
            f"{path} is the configuration of a {stage} run, not of a {cls.stage} run; "
            f"pass a {cls.stage} run's config.yaml"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        raise ConfigError(f"{path}: unknown options {unknown}; valid options are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    return {
        key: _convert_yaml_value(fields[key], hints[key], value, path)
        for key, value in data.items()
    }


def parse_config(cls: type[C], argv: list[str] | None = None, **defaults: Any) -> C:
    """Parse ``argv`` into a ``cls`` instance: dataclass defaults < ``defaults`` < YAML < flags."""
    parser = build_parser(cls)
    ns = vars(parser.parse_args(argv))
    values: dict[str, Any] = dict(defaults)
    config_path = ns.pop("config", None)
    if config_path:
        values.update(load_yaml_overrides(cls, config_path))
    values.update(ns)
    return cls(**values)


def config_to_yaml(cfg: StageConfig) -> str:
    """The resolved configuration as YAML text (stage name first); fields marked
    ``record=False`` (how to run, not what: ``resume``) are left out."""
    kept = {f.name for f in dataclasses.fields(cfg) if f.metadata.get("record", True)}
    data = {"stage": cfg.stage, **{k: v for k, v in dataclasses.asdict(cfg).items() if k in kept}}
    return yaml.safe_dump(data, sort_keys=False)
