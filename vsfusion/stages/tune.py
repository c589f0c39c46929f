"""Hyper-parameter search for a classifier stage (``tune.py``), on the validation split only.

Each trial is one configuration of the stage (:class:`~vsfusion.config.SensorConfig`,
:class:`~vsfusion.config.VideoConfig` or :class:`~vsfusion.config.StreamConfig` with the trial's
values), trained by the stage's own code: :func:`~vsfusion.stages.classifiers.plan_sensor` (and
``plan_video``, ``plan_stream``) builds its model and loaders, and
:func:`~vsfusion.stages.classifiers.fit_classifier` fits it on the training split with the
epoch selected on the validation split (``BestOnValidation``, patience ``--patience``). The
trial's score is that selected epoch's validation accuracy. The test rows are dropped from the
manifest right after it is loaded, so no test file is read and no test prediction is made;
report test accuracy by training ``best.yaml`` with the stage's script afterwards.

KerasTuner (``keras_tuner``) proposes the trials: random search, Bayesian optimisation or
Hyperband (then ``tuner/epochs`` sets the trial's ``--epoch`` and each trial trains from scratch:
the stage's fit starts from a fresh model). Its oracle is seeded with ``--seed`` (plus one, as
KerasTuner reads 0 as "unseeded"), so the same seed and space give the same trials; every trial
trains with ``--seed``, so trials differ only in their hyper-parameters.

A search writes ``<checkpoints>/<dataset>/tune/<stage>/<run_name>/`` through :class:`~vsfusion.stages.common.RunDir`: ``config.yaml``,
``run.json``, ``trials.csv`` and ``trials.md`` (one row per trial: values, validation accuracy,
selected epoch, epochs run, seconds; rewritten after every trial), ``best.yaml`` (the best trial's
whole stage configuration, for the stage script's ``--config``), ``metrics.json``,
``trials/trial_<id>.csv`` (each trial's history), ``tensorboard/trial_<id>/``, ``curves.png``
(the best trial's curves) and ``keras_tuner/`` (the oracle's state and each trial's JSON).

Example:
    >>> [p.spec() for p in parse_space("lr=1e-4:1e-2:log,dropout=0.1|0.3", "sensor")]
    ['lr=0.0001:0.01:log', 'dropout=0.1|0.3']
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import sys
import time
import typing
from collections.abc import Callable, Sequence
from typing import Any

from vsfusion.config import (
    TUNE_CONFIGS,
    ClassifierConfig,
    ConfigError,
    StageConfig,
    StreamConfig,
    VideoConfig,
    config_to_yaml,
)

__all__ = [
    "TUNABLE",
    "Param",
    "default_space",
    "parse_space",
    "feasible_space",
    "make_oracle",
    "run_tune",
    "main",
]

logger = logging.getLogger(__name__)

_COMMON = ("lr", "dropout", "batch_size", "label_smoothing", "schedule", "warmup_epochs")
TUNABLE: dict[str, tuple[str, ...]] = {
    "video": (
        *_COMMON,
        "backbone",
        "crop_size",
        "num_frames",
        "optimizer",
        "mixup",
        "scale_jitter",
        "erase_prob",
    ),
    "sensor": (
        *_COMMON,
        "depth",
        "filters",
        "segments",
        "stats",
        "augment",
        "rotate_deg",
        "time_warp",
        "gain",
        "jitter",
        "sensor_steps",
    ),
    "stream": (*_COMMON, "trunk", "width", "length", "augment"),
}
"""Stage -> the configuration fields ``--space`` may name."""

OBJECTIVE = "val_accuracy"

# bounds of numeric hyper-parameters: name -> (predicate, what it says)
_POSITIVE = (lambda v: v > 0, "> 0")
_UNIT = (lambda v: 0 <= v < 1, "in [0, 1)")
_NONNEG = (lambda v: v >= 0, ">= 0")
_BOUNDS: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": _POSITIVE,
    "dropout": _UNIT,
    "label_smoothing": _UNIT,
    "scale_jitter": _UNIT,
    "erase_prob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    **{n: _NONNEG for n in ("warmup_epochs", "mixup", "rotate_deg", "time_warp", "gain", "jitter")},
}


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: a ``range`` (``low``..``high``, ``log`` scale or ``step``),
    ``choice`` (``values``) or ``fixed`` (``values[0]``) over a stage field of type ``type``."""

    name: str
    kind: str
    type: type
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def spec(self) -> str:
        """The ``--space`` text of this parameter."""
        if self.kind == "range":
            tail = ":log" if self.log else (f":{self.step:g}" if self.step else "")
            return f"{self.name}={self.low:g}:{self.high:g}{tail}"
        return f"{self.name}=" + "|".join(_text(v) for v in self.values)

    def candidates(self, limit: int = 256) -> list[Any] | None:
        """Every value it can take, or None for a continuous or larger range."""
        if self.kind != "range":
            return list(self.values)
        if self.type is int and not self.log:
            step = int(self.step or 1)
            count = (int(self.high) - int(self.low)) // step + 1
            return list(range(int(self.low), int(self.high) + 1, step)) if count <= limit else None
        return None

    def add_to(self, hp: Any) -> None:
        """Declare it in a ``keras_tuner.HyperParameters``."""
        if self.kind == "fixed":
            hp.Fixed(self.name, self.values[0])
        elif self.kind == "choice":
            hp.Choice(self.name, list(self.values), ordered=self.type in (int, float))
        elif self.type is int:
            hp.Int(
                self.name,
                int(self.low),
                int(self.high),
                step=int(self.step) if self.step else None,
                sampling="log" if self.log else "linear",
            )
        else:
            hp.Float(
                self.name,
                float(self.low),
                float(self.high),
                step=self.step,
                sampling="log" if self.log else "linear",
            )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _registry(name: str) -> tuple[str, ...] | None:
    """The registry a name field chooses from (backbones, trunks), else None."""
    if name == "backbone":
        from vsfusion.models import BACKBONES

        return tuple(BACKBONES)
    if name == "trunk":
        from vsfusion.models.trunks import TRUNKS

        return tuple(TRUNKS)
    return None


def _field_type(cls: type[StageConfig], name: str) -> type:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def default_space(stage: str, cfg: StageConfig) -> str:
    """The space searched when ``--space`` is not given.

    All stages: ``lr`` log-uniform in [1e-4, 1e-2] and ``dropout`` uniform in [0, 0.6]. Video also:
    ``crop_size`` 3/4, 1 and 5/4 of ``--crop_size`` (multiples of 8, at least 32) and ``backbone``
    over every registered backbone; stream also ``trunk`` over every registered trunk (those
    that cannot take the stream are dropped; one left is not searched).

    Example:
        >>> from vsfusion.config import SensorConfig
        >>> default_space("sensor", SensorConfig())
        'lr=1e-4:1e-2:log,dropout=0.0:0.6'
    """
    space = "lr=1e-4:1e-2:log,dropout=0.0:0.6"
    if stage == "video":
        crop = int(typing.cast(VideoConfig, cfg).crop_size)
        crops = sorted({max(32, 8 * round(crop * f / 8)) for f in (0.75, 1.0, 1.25)})
        space += f",crop_size={'|'.join(map(str, crops))},backbone={'|'.join(_registry('backbone') or ())}"
    elif stage == "stream":
        space += f",trunk={'|'.join(_registry('trunk') or ())}"
    return space


def _convert(cls: type[StageConfig], name: str, text: str, entry: str) -> Any:
    """``text`` as the value of field ``name`` (its type, choices and bounds); ConfigError else."""
    tp = _field_type(cls, name)
    text = text.strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"--space {entry!r}: {why}; see tune.py --stage ... --help")

    try:
        if tp is bool:
            low = text.lower()
            if low not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                raise ValueError(text)
            value: Any = low in ("true", "yes", "on", "1")
        elif tp is int:
            value = int(text)
        elif tp is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
        else:
            value = text
            if not value:
                raise ValueError(text)
    except ValueError:
        raise bad(f"{text!r} is not a valid {tp.__name__} for {name}") from None
    meta_choices = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get(
        "choices"
    )
    allowed = _registry(name) or meta_choices
    if allowed and value not in allowed:
        raise bad(f"{name} {value!r} is not one of {', '.join(map(str, allowed))}")
    if tp is int and value < 1:
        raise bad(f"{name} must be >= 1")
    if name in _BOUNDS and not _BOUNDS[name][0](value):
        raise bad(f"{name} must be {_BOUNDS[name][1]}, not {text}")
    return value


def parse_space(text: str, stage: str, cls: type[StageConfig] | None = None) -> list[Param]:
    """Parse ``--space`` for ``stage`` (``video``, ``sensor``, ``stream``).

    ``text`` is comma-separated ``NAME=SPEC``: ``LO:HI`` (uniform; integers for an integer
    field), ``LO:HI:log`` (log-uniform, ``LO > 0``), ``LO:HI:STEP`` (a grid), ``A|B|C`` (choices)
    or ``V`` (fixed). ``NAME`` is one of :data:`TUNABLE` of the stage.

    Raises:
        ConfigError: One line: an unknown name, a malformed or empty spec, a value outside the
            field's type, choices or bounds, a repeated name.

    Example:
        >>> p = parse_space("lr=1e-4:1e-2:log", "sensor")[0]
        >>> p.kind, p.low, p.high, p.log
        ('range', 0.0001, 0.01, True)
    """
    cls = cls or TUNE_CONFIGS[stage].tunes  # type: ignore[attr-defined]
    tunable = TUNABLE[stage]
    entries = [e.strip() for e in text.split(",")]
    if not text.strip() or not all(entries):
        raise ConfigError(
            f"--space {text!r} has an empty entry; give comma-separated NAME=SPEC entries, e.g. "
            "lr=1e-4:1e-2:log,dropout=0.1:0.6"
        )
    params: list[Param] = []
    for entry in entries:
        name, eq, spec = (s.strip() for s in entry.partition("="))
        if not eq or not name or not spec:
            raise ConfigError(
                f"--space {entry!r} is not NAME=SPEC (SPEC: LO:HI, LO:HI:log, LO:HI:STEP, A|B|C or V)"
            )
        if name not in tunable:
            raise ConfigError(
                f"--space: unknown hyper-parameter {name!r} for the {stage} stage; searchable: "
                f"{', '.join(tunable)}"
            )
        if any(p.name == name for p in params):
            raise ConfigError(f"--space names {name} twice; give it once")
        tp = _field_type(cls, name)
        if "|" in spec:
            values = [_convert(cls, name, v, entry) for v in spec.split("|")]
            unique = tuple(dict.fromkeys(values))
            kind = "choice" if len(unique) > 1 else "fixed"
            params.append(Param(name, kind, tp, unique))
        elif ":" in spec:
            parts = spec.split(":")
            if tp not in (int, float):
                raise ConfigError(
                    f"--space {entry!r}: {name} is a {tp.__name__}; give choices A|B, not a range"
                )
            if len(parts) not in (2, 3):
                raise ConfigError(f"--space {entry!r}: a range is LO:HI, LO:HI:log or LO:HI:STEP")
            low, high = (_convert(cls, name, v, entry) for v in parts[:2])
            if not low < high:
                raise ConfigError(f"--space {entry!r}: LO {parts[0]} must be below HI {parts[1]}")
            log, step = False, None
            if len(parts) == 3:
                third = parts[2].strip().lower()
                if third == "log":
                    log = True
                elif third != "linear":
                    try:
                        step = tp(third)
                    except ValueError:
                        step = None
                    if step is None or not step > 0:
                        raise ConfigError(
                            f"--space {entry!r}: the third part must be log, linear or a "
                            f"positive {tp.__name__} step, not {parts[2]!r}"
                        )
            if log and low <= 0:
                raise ConfigError(f"--space {entry!r}: a log range needs LO > 0")
            params.append(Param(name, "range", tp, (), low, high, log, step))
        else:
            params.append(Param(name, "fixed", tp, (_convert(cls, name, spec, entry),)))
    return params


def _replace(params: list[Param], name: str, values: Sequence[Any]) -> list[Param]:
    out = []
    for p in params:
        if p.name == name:
            kind = "choice" if len(values) > 1 else "fixed"
            p = dataclasses.replace(p, kind=kind, values=tuple(values))
        out.append(p)
    return out


def feasible_space(
    params: list[Param],
    stage: str,
    cfg: ClassifierConfig,
    check: Callable[[dict[str, Any]], str | None],
    names: tuple[str, ...],
) -> list[Param]:
    """``params`` with the choices of ``names`` that fit no combination removed.

    ``check(values)`` says why a combination of ``names`` (from the space, else ``cfg``) cannot
    train (None: it can). Choices and fixed values of ``names`` in no valid combination are
    dropped (a warning names them); ranges too large to enumerate are left to the trials.

    Raises:
        StageError: No combination fits (the space is empty after the constraints).
    """
    import itertools

    from vsfusion.stages.common import StageError

    by_name = {p.name: p for p in params}
    pools: list[list[Any]] = []
    for n in names:
        cand = by_name[n].candidates() if n in by_name else [getattr(cfg, n)]
        if cand is None:
            return params  # a continuous range: infeasible points fail as trials
        pools.append(cand)
    valid: list[tuple[Any, ...]] = []
    why: str | None = None
    for combo in itertools.product(*pools):
        reason = check(dict(zip(names, combo, strict=True)))
        if reason is None:
            valid.append(combo)
        elif why is None:
            why = reason
    if not valid:
        raise StageError(
            f"the {stage} search space is empty: no combination of "
            f"{', '.join(f'{n}={pool}' for n, pool in zip(names, pools, strict=True))} can train "
            f"(e.g. {why}); widen --space"
        )
    for k, n in enumerate(names):
        p = by_name.get(n)
        if p is None or p.kind == "range":
            continue
        keep = [v for v in p.values if any(c[k] == v for c in valid)]
        if len(keep) < len(p.values):
            dropped = [v for v in p.values if v not in keep]
            logger.warning("%s %s left out of the search: %s", n, dropped, why)
            params = _replace(params, n, keep)
    return params


def make_oracle(
    tuner: str,
    params: list[Param],
    trials: int,
    seed: int,
    *,
    max_epochs: int = 1,
    factor: int = 3,
) -> Any:
    """A KerasTuner oracle maximising validation accuracy over ``params``.

    Args:
        tuner: ``random``, ``bayesian`` or ``hyperband``.
        params: The space (:func:`parse_space`).
        trials: The most trials it proposes.
        seed: The stage's seed (the oracle gets ``seed + 1``: KerasTuner reads 0 as unseeded).
        max_epochs: Hyperband: the largest epoch budget of a trial.
        factor: Hyperband: the reduction factor between rounds.

    Example:
        >>> oracle = make_oracle("random", parse_space("lr=1e-4:1e-2:log", "sensor"), 3, seed=0)
        >>> oracle.max_trials
        3
    """
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for p in params:
        p.add_to(hp)
    objective = kt.Objective(OBJECTIVE, direction="max")
    common = {
        "objective": objective,
        "hyperparameters": hp,
        "allow_new_entries": False,
        "tune_new_entries": False,
        "seed": seed + 1,
        "max_consecutive_failed_trials": max(3, trials + 1),  # infeasible points are trials
    }
    if tuner == "random":
        return kt.oracles.RandomSearchOracle(max_trials=trials, **common)
    if tuner == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=trials, **common)
    if tuner == "hyperband":
        oracle = kt.oracles.HyperbandOracle(max_epochs=max(1, max_epochs), factor=factor, **common)
        oracle.max_trials = trials
        return oracle
    raise ConfigError(f"--tuner {tuner!r}: use random, bayesian or hyperband")


def _planner(stage: str) -> Callable[..., Any]:
    from vsfusion.stages import classifiers

    return {
        "video": classifiers.plan_video,
        "sensor": classifiers.plan_sensor,
        "stream": classifiers.plan_stream,
    }[stage]


def _stage_config(cfg: ClassifierConfig, values: dict[str, Any]) -> ClassifierConfig:
    """The tuned stage's configuration with a trial's ``values`` (``tuner/epochs``: ``epoch``)."""
    base = type(cfg).tunes  # type: ignore[attr-defined]
    kw = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(base)}
    kw.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
    if "tuner/epochs" in values:
        kw["epoch"] = int(values["tuner/epochs"])
    kw["run_name"] = None
    return base(**kw)


def _without_test(manifest: Any) -> Any:
    """``manifest`` without its test rows: a search cannot read or predict them."""
    from vsfusion.data import Manifest

    rows = manifest.samples[manifest.samples["split"] != "test"]
    return Manifest(rows, manifest.classes, manifest.name, manifest.root, manifest.declared)


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "—"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _tuner_class() -> type:
    """The KerasTuner subclass running the stage's fit (made here: keras_tuner loads late)."""
    import keras
    import keras_tuner as kt

    from vsfusion.stages.classifiers import fit_classifier

    class StageTuner(kt.engine.base_tuner.BaseTuner):
        """Runs each trial as the stage's own fit (plan + :func:`fit_classifier`) on
        training/validation and reports the selected epoch's validation accuracy."""

        def __init__(self, oracle: Any, cfg: ClassifierConfig, stage: str, manifest: Any, run: Any):
            super().__init__(oracle, directory=str(run.path), project_name="keras_tuner")
            self.cfg, self.stage, self.manifest, self.run = cfg, stage, manifest, run
            self.plan = _planner(stage)
            self.check = _checks(stage, cfg, manifest)[0]
            self.rows: list[dict[str, Any]] = []
            self.error: BaseException | None = None
            self._pending: dict[str, Any] = {}

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            values = dict(trial.hyperparameters.values)
            self._pending = {"values": values, "started": time.perf_counter()}
            why = self.check(values) if self.check else None
            if why is not None:
                self._pending["note"] = f"infeasible: {why}"
                raise kt.errors.FailedTrialError(why)
            try:
                trial_cfg = _stage_config(self.cfg, values)
                keras.backend.clear_session()
                plan = self.plan(trial_cfg, self.manifest, test=False)
                _, selection = fit_classifier(
                    plan, trial_cfg, self.run, history_file=f"trials/trial_{trial.trial_id}.csv"
                )
            except BaseException as exc:  # report after the search; KerasTuner would swallow it
                self.error = exc
                raise kt.errors.FatalError(str(exc)) from exc
            self._pending.update(selection=selection, epoch=trial_cfg.epoch)
            return {OBJECTIVE: float(selection[OBJECTIVE])}

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            done = self._pending
            selection = done.get("selection", {})
            values = {k: v for k, v in done.get("values", {}).items() if not k.startswith("tuner/")}
            row = {
                "trial": trial.trial_id,
                "status": str(trial.status).lower(),
                **values,
                "epochs": done.get("epoch"),
                OBJECTIVE: selection.get(OBJECTIVE),
                "best_epoch": selection.get("best_epoch"),
                "epochs_run": selection.get("epochs_run"),
                "seconds": round(time.perf_counter() - done.get("started", time.perf_counter()), 1),
                "note": done.get("note", ""),
            }
            self.rows.append(row)
            _write_tables(self.run, self.rows, list(values))
            shown = ", ".join(f"{k}={_text(v)}" for k, v in values.items())
            score = selection.get(OBJECTIVE)
            logger.info(
                "trial %s (%d/%d) %s: %s -> %s",
                trial.trial_id,
                len(self.rows),
                self.oracle.max_trials,
                row["status"],
                shown,
                f"{OBJECTIVE} {score:.4f} (epoch {row['best_epoch']}), {row['seconds']} s"
                if score is not None
                else row["note"],
            )

    return StageTuner


def _write_tables(run: Any, rows: list[dict[str, Any]], names: list[str]) -> None:
    from vsfusion.data.io import atomic_write_text

    columns = [
        "trial",
        "status",
        *names,
        "epochs",
        OBJECTIVE,
        "best_epoch",
        "epochs_run",
        "seconds",
        "note",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run.path / "trials.csv", buf.getvalue())
    title = f"# Trials: {run.cfg.stage.removeprefix('tune_')} stage, {run.cfg.tuner} search\n\n"
    atomic_write_text(run.path / "trials.md", title + _markdown(rows, columns))


def _checks(
    stage: str, cfg: ClassifierConfig, manifest: Any
) -> tuple[Callable[[dict[str, Any]], str | None] | None, tuple[str, ...]]:
    """The feasibility check of a trial's values and the names it depends on (video: the
    backbone takes the clip; stream: the trunk builds on the stream)."""
    from vsfusion.stages.common import StageError, check_video_trunk

    if stage == "video":
        names = ("backbone", "num_frames", "crop_size")

        def video(values: dict[str, Any]) -> str | None:
            v = {n: values.get(n, getattr(cfg, n)) for n in names}
            try:
                check_video_trunk(v["backbone"], v["num_frames"], v["crop_size"], cfg.pretrain)
            except StageError as exc:
                return str(exc)
            return None

        return video, names
    if stage == "stream":
        import keras

        from vsfusion.stages.classifiers import plan_stream

        verdict: dict[Any, str | None] = {}

        def stream(values: dict[str, Any]) -> str | None:
            trunk = values.get("trunk", cfg.trunk)
            if trunk not in verdict:
                trial = _stage_config(cfg, {"trunk": trunk})
                try:
                    plan = plan_stream(typing.cast(StreamConfig, trial), manifest, test=False)
                    plan.build(plan.train)
                    verdict[trunk] = None
                except StageError as exc:
                    verdict[trunk] = str(exc)
                keras.backend.clear_session()
            return verdict[trunk]

        return stream, ("trunk",)
    return None, ()


def run_tune(cfg: ClassifierConfig) -> Any:
    """Search the hyper-parameters of ``cfg``'s stage on validation and write the tuning run.

    Args:
        cfg: A :class:`~vsfusion.config.SensorTuneConfig` (or the video / stream one): the
            stage's options plus ``trials``, ``tuner``, ``space`` and ``hyperband_factor``.

    Returns:
        The finished :class:`~vsfusion.stages.common.RunDir`.

    Raises:
        ConfigError: A bad ``--space`` or ``--trials``.
        StageError: The space is empty after the constraints, or no trial completed.

    Example:
        >>> cfg = parse_config(SensorTuneConfig, ["--dataset", "demo", "--trials", "4"])  # doctest: +SKIP
        >>> run = run_tune(cfg)  # doctest: +SKIP
        >>> (run.path / "best.yaml").is_file()  # doctest: +SKIP
        True
    """
    from vsfusion.stages.common import RunDir, StageError, load_manifest

    stage = cfg.stage.removeprefix("tune_")
    if cfg.trials < 1:
        raise ConfigError(f"--trials {cfg.trials}: a search needs at least 1 trial")
    if cfg.hyperband_factor < 2:
        raise ConfigError(f"--hyperband_factor {cfg.hyperband_factor}: must be at least 2")
    space = cfg.space if cfg.space is not None else default_space(stage, cfg)
    params = parse_space(space, stage)
    manifest = _without_test(load_manifest(cfg))
    if stage == "stream":  # an unknown stream is its own error, not an empty space
        from vsfusion.data import DataError

        try:
            manifest.resolve_stream(typing.cast(StreamConfig, cfg).stream)
        except DataError as exc:
            raise StageError(f"--stream: {exc}") from None
    check, names = _checks(stage, cfg, manifest)
    if check is not None:
        params = feasible_space(params, stage, cfg, check, names)
    logger.info("search space: %s", ",".join(p.spec() for p in params))
    oracle = make_oracle(
        cfg.tuner,
        params,
        cfg.trials,
        cfg.seed,
        max_epochs=cfg.epoch,
        factor=cfg.hyperband_factor,
    )
    run = RunDir.create(cfg, stage=f"tune/{stage}")
    tuner = _tuner_class()(oracle, cfg, stage, manifest, run)
    import keras_tuner as kt

    try:
        tuner.search(verbose=0)
    except kt.errors.FatalError:
        if tuner.error is not None:
            raise tuner.error from None
        raise
    done = [r for r in tuner.rows if r[OBJECTIVE] is not None]
    if not done:
        raise StageError(
            f"no trial of the search completed (see {run.path / 'trials.md'}); widen --space"
        )
    best_trial = oracle.get_best_trials(1)[0]
    best = next(r for r in tuner.rows if r["trial"] == best_trial.trial_id)
    best_cfg = _stage_config(cfg, dict(best_trial.hyperparameters.values))
    from vsfusion.data.io import atomic_write_text

    atomic_write_text(run.path / "best.yaml", config_to_yaml(best_cfg))
    history = f"trials/trial_{best['trial']}.csv"
    run.histories = {h: e for h, e in run.histories.items() if h == history}  # curves.png: best
    values = {p.name: getattr(best_cfg, p.name) for p in params}
    metrics = {
        "stage": stage,
        "tuner": cfg.tuner,
        "objective": OBJECTIVE,
        "space": ",".join(p.spec() for p in params),
        "trials": len(tuner.rows),
        "completed": len(done),
        "n_train": int((manifest.samples["split"] == "train").sum()),
        "n_val": int((manifest.samples["split"] == "val").sum()),
        "best": {
            "trial": best["trial"],
            "values": values,
            OBJECTIVE: best[OBJECTIVE],
            "best_epoch": best["best_epoch"],
            "epoch": best_cfg.epoch,
        },
    }
    run.finish(metrics)
    logger.info(
        "best trial %s: %s, %s %.4f (epoch %s); train it with: %s --config %s",
        best["trial"],
        ", ".join(f"{k}={_text(v)}" for k, v in values.items()),
        OBJECTIVE,
        best[OBJECTIVE],
        best["best_epoch"],
        {"video": "train_video.py", "sensor": "train_sensor.py", "stream": "train_stream.py"}[
            stage
        ],
        run.path / "best.yaml",
    )
    return run


def _usage() -> str:
    lines = [
        "usage: tune.py --stage {video,sensor,stream} [stage options] [--trials N] "
        "[--tuner random|bayesian|hyperband] [--space NAME=SPEC,...]",
        "",
        "Hyper-parameter search of a classifier stage, on the validation split only: each trial",
        "trains the stage (its model, loaders and epoch selection) on the training split and is",
        "scored by validation accuracy; the test split is never read. Writes",
        "<checkpoints>/<dataset>/tune/<stage>/<run>/ with trials.csv/.md and best.yaml, which",
        "the stage's script takes as --config.",
        "",
        "searchable (--space NAME):",
    ]
    lines += [f"  {stage}: {', '.join(names)}" for stage, names in TUNABLE.items()]
    lines += ["", "tune.py --stage STAGE --help lists every option and the default space."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``tune.py``: parse ``--stage``, then the stage's options and the search's, and run it.

    Returns:
        The exit code: 0, or 2 after one ``error:`` line (bad options or space, empty space).
    """
    from vsfusion.cli import run_cli
    from vsfusion.config import _OneLineParser

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = _OneLineParser(prog="tune.py", add_help=False)
    pre.add_argument("--stage", choices=sorted(TUNE_CONFIGS))
    ns, rest = pre.parse_known_args(argv)
    if ns.stage is None:
        if "-h" in rest or "--help" in rest:
            print(_usage())
            return 0
        print(
            "error: --stage is required (video, sensor or stream); see tune.py --help",
            file=sys.stderr,
        )
        return 2
    cls = TUNE_CONFIGS[ns.stage]
    if "-h" in rest or "--help" in rest:
        stage_cfg = cls.tunes()  # type: ignore[attr-defined]
        print(f"default --space for --stage {ns.stage}: {default_space(ns.stage, stage_cfg)}")
        print(f"searchable: {', '.join(TUNABLE[ns.stage])}\n")
    return run_cli(cls, run_tune, rest)
