"""Run the stages in order (baselines, sensor, video, generator, fusion) with a preset and collect
the results.

Stage runs go to ``<out>/checkpoints/<dataset>/<stage>/seed<seed>/``. A finished stage run whose
resolved configuration is identical is reused, so an interrupted reproduction resumes where it
stopped and ``--stages fusion`` re-evaluates without retraining. ``<out>/results.json`` and
``<out>/results.md`` hold every stream that was run (streams not run are null); the classical
``baseline_sensor`` / ``baseline_video`` rows of the baselines stage are merged into them. With
``--seeds 0,1,2`` the whole reproduction runs once per seed in ``<out>/seed<N>/``, and
``<out>/results_seeds.json`` and ``results_seeds.md`` give the mean and standard deviation of
every row over the seeds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from vsfusion.config import (
    BaselinesConfig,
    FusionConfig,
    GeneratorConfig,
    ReproduceConfig,
    SensorConfig,
    StageConfig,
    VideoConfig,
    config_to_yaml,
)
from vsfusion.data import dataset_fact
from vsfusion.data.io import atomic_write_text
from vsfusion.evaluation.report import (
    aggregate_markdown,
    aggregate_seeds,
    build_results,
    write_results,
)
from vsfusion.stages.common import StageError, check_video_trunk
from vsfusion.stages.resume import continue_killed

__all__ = [
    "METHOD_PRESETS",
    "PRESETS",
    "STAGE_ORDER",
    "fold_subjects",
    "oof_folds",
    "parse_seeds",
    "run_reproduce",
    "stage_configs",
]

logger = logging.getLogger(__name__)

STAGE_ORDER = ("baselines", "sensor", "video", "generator", "fusion")

# Hyper-parameters per preset and stage. "fast" is sized for a 2-core CPU; "paper" trains longer
# with the patience the original experiments used. Dataset-specific input sizes come from the
# dataset's entry in DATASET_PRESETS.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {
        # Chosen on the validation subjects of the UTD-MHAD and Berkeley MHAD dev protocols, 2-3
        # seeds (README, "Strong streams"): segment pooling, 3 modules, cosine over all 40 epochs.
        "sensor": {
            "epoch": 40,
            "patience": 40,
            "batch_size": 16,
            "lr": 1e-3,
            "schedule": "cosine",
            "label_smoothing": 0.1,
            "segments": 3,
            "depth": 3,
        },
        "video": {"epoch": 12, "patience": 6, "batch_size": 8, "lr": 1e-3},
        "generator": {"epoch": 80, "patience": 20, "batch_size": 32, "lr": 1e-3},
        "fusion": {"mlp_epochs": 200},
        "reproduce": {"oof_folds": 2},
    },
    "paper": {
        "sensor": {"epoch": 150, "patience": 30, "batch_size": 16, "lr": 1e-3},
        "video": {"epoch": 60, "patience": 15, "batch_size": 8, "lr": 1e-3},
        # the generator's own I3D, started from the video trunk; it needs the lower learning rate
        "generator": {
            "trunk": "finetune",
            "epoch": 60,
            "patience": 15,
            "batch_size": 8,
            "lr": 1e-4,
        },
        "fusion": {"mlp_epochs": 400},
        "reproduce": {"oof_folds": 2},
    },
}
# Generator methods with their own trunk train a whole video network: by default with the video
# stage's budget (epochs, patience, batch size, learning rate), so that the method and its
# `video_ensemble` control cost what the video classifier costs.
METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "regress": {},
    "privileged": {"trunk": "scratch", "budget": "video"},
    "cmc": {"trunk": "finetune", "budget": "video"},
}
_BUDGET = ("epoch", "patience", "batch_size", "lr")
# Per dataset: clip sizes (caches hold 32 frames at 128 px; the loader samples and crops from them)
# under "<stage>", and overrides for one preset only under "<stage>@<preset>".
DATASET_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "demo": {
        "video": {"num_frames": 16, "crop_size": 56},
        # Warm-up + cosine reaches in 15 epochs the validation accuracy that a constant rate
        # reached at epoch 13 of 23 (early-stopped), at half the compute (README, demo results).
        "video@fast": {"epoch": 15, "patience": 15, "schedule": "cosine", "warmup_epochs": 1.0},
    },
    "UTD-MHAD": {
        "video": {"num_frames": 16, "crop_size": 96},
        # Chosen on validation subject 5 of the dev protocol (README, "Strong streams"): the person
        # crop at 80 px (crop 64) for 30 epochs beat the centre crop and 96 px for 15 epochs.
        "video@fast": {
            "crop_size": 64,
            "frame_size": 80,
            "epoch": 30,
            "patience": 30,
            "schedule": "cosine",
            "warmup_epochs": 1.0,
            "label_smoothing": 0.1,
            "scale_jitter": 0.25,
            "erase_prob": 0.25,
        },
        # Cache options per video modality, used when --video_crop is not given.
        "data": {"video_crop": {"depth": "person"}},
    },
    "MHAD": {"video": {"num_frames": 16, "crop_size": 96}},
    "VSL": {"video": {"num_frames": 16, "crop_size": 112}},
    "folder": {"video": {"num_frames": 16, "crop_size": 112}},
}
_CLASSES: dict[str, type[StageConfig]] = {
    "baselines": BaselinesConfig,
    "sensor": SensorConfig,
    "video": VideoConfig,
    "generator": GeneratorConfig,
    "fusion": FusionConfig,
}


def parse_stages(text: str) -> list[str]:
    """Validate a comma-separated stage list and return it in pipeline order."""
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(STAGE_ORDER))
    if unknown or not wanted:
        raise StageError(f"unknown stages {unknown or wanted}; choose from {','.join(STAGE_ORDER)}")
    return [s for s in STAGE_ORDER if s in wanted]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; a clear error for anything else (or a repeated seed).

    Example:
        >>> parse_seeds("2, 0,1")
        [2, 0, 1]
    """
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise StageError(f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise StageError(f"--seeds {text!r}: give distinct comma-separated integers, e.g. 0,1,2")
    return seeds


def final_fit_default(cfg: ReproduceConfig) -> bool:
    """Refit the sensor and video models on training + validation only when no later stage of
    this run uses their validation predictions (the generator's targets, the fusion weights)."""
    return not {"generator", "fusion"} & set(parse_stages(cfg.stages))


def stage_configs(cfg: ReproduceConfig) -> dict[str, StageConfig]:
    """The configuration of every stage for this reproduction (preset < dataset preset < shared fields)."""
    modality = cfg.video_modality or dataset_fact(cfg.dataset, "DEFAULT_VIDEO_MODALITY")
    crops = DATASET_PRESETS.get(cfg.dataset, {}).get("data", {}).get("video_crop", {})
    shared = {
        "dataset": cfg.dataset,
        "data_root": cfg.data_root,
        "cache_dir": cfg.cache_dir,
        "video_modality": cfg.video_modality,
        "protocol": cfg.protocol,
        "video_crop": cfg.video_crop or crops.get(modality),
        "subject_pattern": cfg.subject_pattern,
        "prep_workers": cfg.prep_workers,
        "checkpoints": str(Path(cfg.out) / "checkpoints"),
        "run_name": f"seed{cfg.seed}",
        "seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "subjects": cfg.subjects,
        "workers": cfg.workers,
        "verbose": cfg.verbose,
    }
    configs: dict[str, StageConfig] = {}
    for stage, cls in _CLASSES.items():
        values = {
            **PRESETS[cfg.preset].get(stage, {}),
            **DATASET_PRESETS.get(cfg.dataset, {}).get(stage, {}),
            **DATASET_PRESETS.get(cfg.dataset, {}).get(f"{stage}@{cfg.preset}", {}),
            **shared,
        }
        if stage == "video":
            values["pretrain"] = cfg.pretrain
            if cfg.backbone:
                values["backbone"] = cfg.backbone
        if stage in ("sensor", "video"):
            values["final_fit"] = final_fit_default(cfg) if cfg.final_fit is None else cfg.final_fit
        if stage == "fusion":
            values["out"] = None
        if stage == "generator":
            method = cfg.method or values.get("method") or "regress"
            if method not in METHOD_PRESETS:
                raise StageError(
                    f"unknown --method {method!r}; choose from {', '.join(METHOD_PRESETS)}"
                )
            preset = dict(METHOD_PRESETS[method])
            if preset.pop("budget", None) == "video":
                video = configs["video"]
                preset.update({k: getattr(video, k) for k in _BUDGET})
            values.update({"method": method, **preset})
            if cfg.trunk:
                values["trunk"] = cfg.trunk
        names = {f.name for f in dataclasses.fields(cls)}
        configs[stage] = cls(**{k: v for k, v in values.items() if k in names})
    return configs


def _finished(cfg: StageConfig) -> Path | None:
    run = Path(cfg.checkpoints) / cfg.dataset / cfg.stage / str(cfg.run_name)
    if not (run / "metrics.json").is_file():
        return None
    if (run / "config.yaml").read_text() != config_to_yaml(cfg):
        raise StageError(
            f"{run} holds a finished {cfg.stage} run with a different configuration; "
            "use another --out or remove that folder"
        )
    return run


def _runner(stage: str) -> Any:
    if stage == "baselines":
        from vsfusion.stages.baselines import run_baselines

        return run_baselines
    if stage in ("sensor", "video"):
        from vsfusion.stages import classifiers

        return getattr(classifiers, f"run_{stage}")
    if stage == "generator":
        from vsfusion.stages.generator import run_generator

        return run_generator
    from vsfusion.stages.fusion import run_fusion

    return run_fusion


def run_reproduce(cfg: ReproduceConfig) -> dict[str, Any]:
    """Run the selected stages and write ``<out>/results.json`` and ``<out>/results.md``.

    With ``cfg.seeds`` every seed runs in ``<out>/seed<N>/`` and the return value is the
    :func:`~vsfusion.evaluation.report.aggregate_seeds` summary written to
    ``<out>/results_seeds.json`` and ``<out>/results_seeds.md``.
    """
    if cfg.aggregate:
        runs = [Path(p.strip()) for p in cfg.aggregate.split(",") if p.strip()]
        return aggregate_fusion_runs(runs, Path(cfg.out))
    if cfg.seeds:
        return _run_seeds(cfg)
    stages = parse_stages(cfg.stages)
    if cfg.backbone:
        check_video_trunk(cfg.backbone, pretrain=cfg.pretrain)
    configs = stage_configs(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Path] = {}
    timings: dict[str, float] = {}
    for stage in stages:
        if stage == "fusion" and oof_folds(cfg) > 0:
            start = time.time()
            folds = _run_folds(cfg, configs)
            timings["folds"] = round(time.time() - start, 1)
            if folds:
                configs["fusion"] = dataclasses.replace(configs["fusion"], oof=",".join(folds))
        sc = configs[stage]
        done = _finished(sc)
        if done is not None:
            logger.info("%s: reusing finished run %s", stage, done)
            runs[stage] = done
            continue
        logger.info("=== stage %s ===", stage)
        start = time.time()
        # run again after a kill: a killed training stage continues from its last epoch
        runs[stage] = _runner(stage)(continue_killed(sc)).path
        timings[stage] = round(time.time() - start, 1)
    results = _collect(cfg, configs, runs)
    results.setdefault("extra", {})["stage_seconds"] = timings
    results["extra"]["preset"] = cfg.preset
    results["extra"]["runs"] = {k: str(v) for k, v in runs.items()}
    write_results(out, results)
    logger.info("results written to %s", out / "results.md")
    return results


def oof_folds(cfg: ReproduceConfig) -> int:
    """How many out-of-fold runs select the fusion (``--oof_folds``, else the preset's)."""
    if cfg.oof_folds is not None:
        return max(0, int(cfg.oof_folds))
    return int(PRESETS[cfg.preset].get("reproduce", {}).get("oof_folds", 0))


def _subject_key(subject: str) -> tuple[float, str]:
    return (int(subject), subject) if subject.isdigit() else (float("inf"), subject)


def fold_subjects(train: list[str], val: list[str], folds: int) -> list[str]:
    """``--subjects`` specs of the out-of-fold runs: fold k holds out every k-th training subject.

    Example:
        >>> fold_subjects(["3", "1"], ["5"], 2)
        ['train=3 val=5 test=1', 'train=1 val=5 test=3']
    """
    train = sorted(train, key=_subject_key)
    k = min(int(folds), len(train))
    specs = []
    for i in range(k):
        held = train[i::k]
        rest = [s for s in train if s not in held]
        specs.append(f"train={','.join(rest)} val={','.join(val)} test={','.join(held)}")
    return specs


def _run_folds(cfg: ReproduceConfig, configs: dict[str, StageConfig]) -> list[str]:
    """Train sensor, video and generator once per fold of the training subjects (each fold's
    held-out subjects are its test split) and return the fold generator runs."""
    from vsfusion.stages.common import load_manifest

    samples = load_manifest(configs["fusion"]).samples
    subjects = {
        split: sorted(set(samples.loc[samples["split"] == split, "subject"].astype(str)))
        for split in ("train", "val")
    }
    if len(subjects["train"]) < 2:
        logger.warning(
            "only %d training subject(s): no out-of-fold runs, the fusion is chosen on validation",
            len(subjects["train"]),
        )
        return []
    runs = []
    for k, spec in enumerate(fold_subjects(subjects["train"], subjects["val"], oof_folds(cfg)), 1):
        logger.info("=== out-of-fold run %d: --subjects %r ===", k, spec)
        fold = dataclasses.replace(
            cfg,
            out=str(Path(cfg.out) / "folds" / f"fold{k}"),
            subjects=spec,
            stages="sensor,video,generator",
            seeds=None,
            oof_folds=0,
            final_fit=None,
        )
        runs.append(run_reproduce(fold)["extra"]["runs"]["generator"])
    return runs


def _paired_tests(fusion_runs: list[Path]) -> list[dict[str, Any]]:
    """Exact McNemar on the test predictions pooled over seeds: fusion_best against video and
    against the control's fusion (when every seed has it)."""
    from vsfusion.evaluation.metrics import pooled_mcnemar
    from vsfusion.stages.fusion import load_predictions

    loaded = [load_predictions(run) for run in fusion_runs]
    pairs = [("fusion_best", "video"), ("fusion_best", "fusion_sources")]
    for control in ("video_head_control_fusion", "video_ensemble_fusion", "head_control_fusion"):
        if all(control in probs for _, probs in loaded):
            pairs.append(("fusion_best", control))
    tests = []
    for a, b in pairs:
        if not all(a in probs and b in probs for _, probs in loaded):
            continue
        groups = [(y, probs[a].argmax(1), probs[b].argmax(1)) for y, probs in loaded]
        tests.append({"pair": [a, b], **pooled_mcnemar(groups)})
    return tests


def _run_seeds(cfg: ReproduceConfig) -> dict[str, Any]:
    seeds = parse_seeds(cfg.seeds or "")
    parse_stages(cfg.stages)  # fail before the first seed trains anything
    out = Path(cfg.out)
    per_seed = []
    for seed in seeds:
        logger.info("=== seed %d ===", seed)
        sub = dataclasses.replace(cfg, seed=seed, seeds=None, out=str(out / f"seed{seed}"))
        per_seed.append(run_reproduce(sub))
    fusion_runs = [
        Path(r["extra"]["runs"]["fusion"])
        for r in per_seed
        if "fusion" in r.get("extra", {}).get("runs", {})
    ]
    paired = _paired_tests(fusion_runs) if len(fusion_runs) == len(per_seed) else None
    return _write_aggregate(per_seed, [str(s) for s in seeds], paired, out)


def _write_aggregate(
    per_seed: list[dict[str, Any]], names: list[str], paired: Any, out: Path
) -> dict[str, Any]:
    aggregate = aggregate_seeds(per_seed, paired_tests=paired)
    aggregate["per_seed"] = {n: r["accuracy"] for n, r in zip(names, per_seed, strict=True)}
    atomic_write_text(
        out / "results_seeds.json", json.dumps(aggregate, indent=2, default=float) + "\n"
    )
    atomic_write_text(out / "results_seeds.md", aggregate_markdown(aggregate))
    logger.info("mean and sd over %s written to %s", names, out / "results_seeds.md")
    return aggregate


def aggregate_fusion_runs(runs: list[Path], out: Path) -> dict[str, Any]:
    """``--aggregate``: mean ± sd over finished fusion runs (one per seed) and the exact McNemar
    tests pooled over them, written to ``<out>/results_seeds.{json,md}``; nothing is trained."""
    results = []
    for run in runs:
        path = run / "results.json"
        if not path.is_file():
            raise StageError(f"--aggregate: {run} is not a finished fusion run (no results.json)")
        results.append(json.loads(path.read_text()))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise StageError(f"--aggregate: runs {names} share a folder name; name each run once")
    out.mkdir(parents=True, exist_ok=True)
    return _write_aggregate(results, names, _paired_tests(runs), out)


def _collect(
    cfg: ReproduceConfig, configs: dict[str, StageConfig], runs: dict[str, Path]
) -> dict[str, Any]:
    """Results from the fusion run when there is one, else from the single-modality runs; the
    baselines run's rows are merged into either."""
    baselines_run = runs.get("baselines") or _finished(configs["baselines"])
    baselines = json.loads((baselines_run / "metrics.json").read_text()) if baselines_run else None
    fusion_run = runs.get("fusion") or _finished(configs["fusion"])
    if fusion_run is not None:
        from vsfusion.stages.fusion import relocate_figures

        results = json.loads((fusion_run / "results.json").read_text())
        results = relocate_figures(results, fusion_run, Path(cfg.out))
        return _merge_baselines(results, baselines) if baselines else results
    accuracy: dict[str, float | None] = {}
    macro_f1: dict[str, float | None] = {}
    metrics: dict[str, Any] = {}
    for stage in ("video", "sensor"):
        run = runs.get(stage) or _finished(configs[stage])
        if run is None:
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        if metrics.get("test"):
            accuracy[stage], macro_f1[stage] = metrics["test"]["top1"], metrics["test"]["macro_f1"]
    metrics = metrics or baselines or {}
    if not metrics:
        raise StageError(
            f"no finished stage under {Path(cfg.out) / 'checkpoints'}; run a stage first"
        )
    results = build_results(
        dataset=cfg.dataset,
        n_train=metrics["n_train"],
        n_val=metrics["n_val"],
        n_test=metrics["n_test"],
        seed=cfg.seed,
        accuracy=accuracy,
        macro_f1=macro_f1,
        mcnemar_p=None,
    )
    return _merge_baselines(results, baselines) if baselines else results


def _merge_baselines(results: dict[str, Any], baselines: dict[str, Any]) -> dict[str, Any]:
    """Put the baselines run's test scores into the ``baseline_*`` rows of ``results`` and what
    was chosen (model, hyper-parameters, LOSO accuracy and folds) into ``extra["baselines"]``."""
    for metric in ("accuracy", "macro_f1"):
        results.setdefault(metric, {}).update(baselines.get(metric, {}))
    results.setdefault("extra", {})["baselines"] = {
        row: {
            key: info[key]
            for key in ("features", "model", "params", "loso_accuracy", "loso_folds", "n_fit")
        }
        for row, info in baselines.get("streams", {}).items()
    }
    return build_results(**{k: results[k] for k in _RESULT_KEYS}, extra=results.get("extra"))


_RESULT_KEYS = (
    "dataset",
    "n_train",
    "n_val",
    "n_test",
    "seed",
    "accuracy",
    "macro_f1",
    "mcnemar_p",
)
