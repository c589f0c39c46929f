"""export.py: a trained model as a SavedModel, ONNX or LiteRT file, checked against Keras.

``RUN`` is a finished run folder (its ``deploy.keras`` when it has one, as a fusion run does,
else its ``best.keras``: video, sensor and stream classifier runs) or a ``.keras`` file. The
export (see :mod:`vsfusion.export`) is written into a hidden temporary folder beside ``--out``
(default ``<run>/export/<format>[_<quantize>]``), run with its own runtime on clips of the run's
validation split read as the run's test-time loader reads them, compared with Keras on the same
clips, and only then renamed to ``--out`` with ``export.json`` (what was exported, the check's
figures, the package versions). A float32 export that differs from Keras by more than
``--tolerance`` is an error and nothing is written; an existing export is replaced only with
``--force``. When the run's data cannot be read (a bare ``.keras`` file, a moved dataset) the
check uses random inputs and says so in ``export.json``.

Example:
    >>> out = run_export(ExportConfig(run="checkpoints/demo/fusion/latest", format="onnx"))  # doctest: +SKIP
    >>> sorted(p.name for p in out.iterdir())  # doctest: +SKIP
    ['export.json', 'model.onnx']
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vsfusion.config import (
    ConfigError,
    ExportConfig,
    FusionConfig,
    GeneratorConfig,
    PretrainConfig,
    SensorConfig,
    StageConfig,
    StreamConfig,
    VideoConfig,
    load_yaml_overrides,
)
from vsfusion.data import ClipLoader, DataError
from vsfusion.data.io import atomic_write_text
from vsfusion.export import (
    ARTIFACTS,
    EXPORT_RECORD,
    ExportUnsupported,
    compare_outputs,
    error_text,
    export_model,
    export_versions,
    keras_predict,
    load_exported,
)
from vsfusion.stages.common import StageError, load_manifest, load_model, read_run_config

__all__ = ["run_export", "resolve_export_source", "RunInputs"]

logger = logging.getLogger(__name__)

#: The model a run folder exports, in order of preference.
RUN_MODELS: tuple[str, ...] = ("deploy.keras", "best.keras")
_STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    c.stage: c
    for c in (
        VideoConfig,
        SensorConfig,
        StreamConfig,
        GeneratorConfig,
        FusionConfig,
        PretrainConfig,
    )
}
_RANDOM_STEPS = 64  # length of random sequences for inputs of unknown length


def resolve_export_source(path: str | os.PathLike | None) -> tuple[Path, Path | None]:
    """The ``.keras`` file to export and its run folder (None for a file outside a run).

    A folder is a finished run (``metrics.json``) holding ``deploy.keras`` or ``best.keras``,
    or a stage folder with a ``latest`` pointer to one.

    Raises:
        StageError: One line naming the path and what to pass instead.

    Example:
        >>> resolve_export_source("checkpoints/demo/fusion/run1")  # doctest: +SKIP
        (PosixPath('checkpoints/demo/fusion/run1/deploy.keras'), PosixPath('checkpoints/demo/fusion/run1'))
    """
    hint = (
        "pass a finished run folder (e.g. checkpoints/<dataset>/fusion/<run>, or "
        "checkpoints/<dataset>/video/latest) or a .keras file"
    )
    if path is None or str(path).strip() == "":
        raise StageError(f"no RUN given; {hint}")
    p = Path(path)
    if p.name == "latest" and p.is_file():
        p = p.parent / p.read_text().strip()
    elif p.is_dir() and (p / "latest").is_file() and not (p / "metrics.json").is_file():
        p = p / (p / "latest").read_text().strip()
    if p.is_dir():
        model = next((p / name for name in RUN_MODELS if (p / name).is_file()), None)
        if model is None or not (p / "metrics.json").is_file():
            raise StageError(
                f"{p} is not a finished run folder (no {' or '.join(RUN_MODELS)} with "
                f"metrics.json); {hint}"
            )
        return model, p
    if p.suffix == ".keras":
        if not p.is_file():
            raise StageError(f"{p} does not exist; {hint}")
        return p, (p.parent if (p.parent / "config.yaml").is_file() else None)
    if not p.exists():
        raise StageError(f"{p} does not exist; {hint}")
    raise StageError(f"{p} is not a run folder or a .keras file; {hint}")


def default_out(model_file: Path, run: Path | None, fmt: str, quantize: str) -> Path:
    """``<run>/export/<format>[_<quantize>]`` for a run's own model, else
    ``<folder>/export/<stem>_<format>[_<quantize>]`` beside the ``.keras`` file."""
    name = fmt if quantize == "none" else f"{fmt}_{quantize}"
    if run is not None and model_file.parent == run and model_file.name in RUN_MODELS:
        own = next(n for n in RUN_MODELS if (run / n).is_file())
        if model_file.name == own:
            return run / "export" / name
    return model_file.parent / "export" / f"{model_file.stem}_{name}"


class RunInputs:
    """Inputs for ``model`` read from a run's dataset, as the run's test-time loader reads them.

    Clip inputs (``(B, T, H, W, C)``) take ``T`` frames, centre-cropped to ``H`` (after the
    run's ``frame_size``, if any); sequence inputs are resampled to their length.

    Args:
        model: The model whose inputs (by name) are read.
        run: The run folder (its ``config.yaml`` names the dataset).
        data_root: The dataset's folder, if not the one in ``config.yaml``.

    Raises:
        StageError, DataError, ConfigError: The run's configuration or data cannot be read, or
            lacks a stream the model takes.
    """

    def __init__(self, model: keras.Model, run: Path, data_root: str | None = None) -> None:
        config = read_run_config(run)
        cls = _STAGE_CONFIGS.get(str(config.get("stage")))
        if cls is None:
            raise StageError(f"{run}/config.yaml names no stage whose data export.py can read")
        values = load_yaml_overrides(cls, run / "config.yaml")
        if data_root:
            values["data_root"] = data_root
        values["verbose"] = 0
        self.cfg = cls(**values)
        self.manifest = load_manifest(self.cfg)
        self.names = [t.name for t in model.inputs]
        self.options: dict[str, Any] = {"lengths": {}}
        for tensor in model.inputs:
            shape = tuple(tensor.shape[1:])
            if len(shape) == 4:
                self.options.update(num_frames=shape[0], crop_size=shape[1])
                self.options["frame_size"] = config.get("frame_size") or _deploy_frame_size(run)
            elif shape and shape[0] is not None:
                self.options["lengths"][tensor.name] = int(shape[0])
        num_classes = int(model.outputs[0].shape[-1])
        self.labelled = num_classes == len(self.manifest.classes)

    def rows(self, split: str) -> Any:
        rows = self.manifest.split(split)
        for name in self.names:
            if name not in rows.columns:
                raise DataError(
                    f"dataset {self.manifest.name} has no {name!r} stream, which the model takes"
                )
            rows = rows[rows[name].fillna("").astype(str) != ""]
        return rows

    def read(self, split: str, n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Up to ``n`` samples of ``split`` (a seeded choice, in manifest order) and labels."""
        rows = self.rows(split)
        if len(rows) == 0:
            raise DataError(f"{self.manifest.name}: split {split!r} has no samples for the model")
        if len(rows) > n:
            pick = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
            rows = rows.iloc[pick]
        loader = ClipLoader(
            rows,
            self.manifest.classes,
            modalities=self.names,
            streams=self.manifest.streams,
            batch_size=len(rows),
            train=False,
            **self.options,
        )
        x, y = loader[0]
        return {k: np.asarray(v, np.float32) for k, v in x.items()}, np.asarray(y)

    def describe(self, split: str, n: int) -> str:
        what = {"val": "validation", "train": "training"}.get(split, split)
        return f"{what} split of {self.manifest.name} ({n} samples)"


def _deploy_frame_size(run: Path) -> int | None:
    """The ``frame_size`` a fusion run's video classifier was trained with (its results.json)."""
    try:
        deploy = json.loads((run / "results.json").read_text())["extra"]["deploy"]
        return deploy["clip"].get("frame_size")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def random_inputs(model: keras.Model, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` random samples per input: clips uniform in [0, 255], other inputs standard normal
    (an unknown length becomes 64 steps)."""
    rng = np.random.default_rng(seed)
    out = {}
    for tensor in model.inputs:
        shape = [_RANDOM_STEPS if d is None else int(d) for d in tensor.shape[1:]]
        if len(shape) == 4:
            out[tensor.name] = rng.uniform(0, 255, (n, *shape)).astype(np.float32)
        else:
            out[tensor.name] = rng.standard_normal((n, *shape)).astype(np.float32)
    return out


_DATA_ERRORS = (StageError, DataError, ConfigError, OSError, KeyError)


def _check_inputs(
    model: keras.Model, run: Path | None, cfg: ExportConfig
) -> tuple[dict[str, np.ndarray], np.ndarray | None, str, RunInputs | None]:
    """Inputs of the parity check: the run's validation clips (else test, else training), or
    random inputs with the reason."""
    reason = "no run folder"
    if run is not None:
        try:
            data = RunInputs(model, run, cfg.data_root)
            for split in ("val", "test", "train"):
                if len(data.rows(split)):
                    x, y = data.read(split, cfg.samples)
                    n = len(y)
                    return x, (y if data.labelled else None), data.describe(split, n), data
            reason = "the run's dataset has no samples for the model"
        except _DATA_ERRORS as exc:
            reason = " ".join(str(exc).split())[:200]
    logger.warning("checking the export on random inputs: %s", reason)
    return random_inputs(model, cfg.samples), None, f"random ({reason})", None


def _calibration(data: RunInputs | None, cfg: ExportConfig) -> tuple[Any, str]:
    """The representative dataset of ``--quantize int8``: training clips, one at a time."""
    if data is None:
        raise StageError(
            f"--quantize int8 calibrates on the run's training split, which {cfg.run} does not "
            "give (pass the run folder, or --data_root if its dataset moved), or use "
            "--quantize dynamic"
        )
    try:
        x, y = data.read("train", cfg.calibration, seed=1)
    except _DATA_ERRORS as exc:
        raise StageError(f"--quantize int8: the training split could not be read ({exc})") from None

    def samples() -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(y)):
            yield {k: v[i : i + 1] for k, v in x.items()}

    return samples, data.describe("train", len(y))


def _classes(run: Path | None) -> list[str] | None:
    if run is None:
        return None
    for name in ("metrics.json", "results.json"):
        try:
            classes = json.loads((run / name).read_text()).get("classes")
        except (OSError, ValueError, AttributeError):
            continue
        if classes:
            return [str(c) for c in classes]
    return None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _install(tmp: Path, out: Path, force: bool) -> None:
    """Rename the finished ``tmp`` to ``out``; an existing ``out`` (``force``) is replaced."""
    old = None
    if out.exists():
        if not force:  # appeared while exporting
            raise StageError(f"{out} already exists; pass --force to replace it or choose --out")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def run_export(cfg: ExportConfig) -> Path:
    """Export ``cfg.run`` in ``cfg.format``, check it against Keras and write it to ``--out``.

    Returns:
        The export folder (``export.json`` and the artifact of :data:`vsfusion.export.ARTIFACTS`).

    Raises:
        StageError: RUN is not a run folder or ``.keras`` file, the output exists without
            ``--force``, the model cannot be converted, or a float32 export differs from Keras
            by more than ``--tolerance``; nothing is written then.
    """
    started = time.time()
    if cfg.format not in ARTIFACTS:
        raise StageError(f"unknown --format {cfg.format!r}; choose one of {', '.join(ARTIFACTS)}")
    if cfg.quantize != "none" and cfg.format != "litert":
        raise StageError(
            f"--quantize {cfg.quantize} applies to --format litert only; drop it or export litert"
        )
    if cfg.samples < 1 or cfg.calibration < 1:
        raise StageError("--samples and --calibration must be at least 1")
    model_file, run = resolve_export_source(cfg.run)
    out = Path(cfg.out) if cfg.out else default_out(model_file, run, cfg.format, cfg.quantize)
    if out.exists() and not cfg.force:
        raise StageError(f"{out} already exists; pass --force to replace it or choose --out")
    model = load_model(model_file)
    x, labels, source, data = _check_inputs(model, run, cfg)
    representative, calibration = None, None
    if cfg.quantize == "int8":
        representative, calibration = _calibration(data, cfg)

    created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    tmp = out.with_name(f".{out.name}.incomplete-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        artifact = tmp / ARTIFACTS[cfg.format]
        logger.info("exporting %s to %s (%s)", model_file, cfg.format, cfg.quantize)
        try:
            info = export_model(
                model,
                artifact,
                cfg.format,
                quantize=cfg.quantize,
                representative=representative,
            )
        except ExportUnsupported as exc:
            raise StageError(f"{model_file}: {exc}") from None
        reference = keras_predict(model, x)
        try:
            got = load_exported(artifact, cfg.format)(x)
        except Exception as exc:  # noqa: BLE001 - a file its runtime cannot run is not an export
            logger.debug("running the %s export failed", cfg.format, exc_info=True)
            raise StageError(
                f"{model_file}: the {cfg.format} export does not run in its runtime "
                f"({error_text(exc, 200)}); nothing written"
            ) from None
        check = compare_outputs(reference, got, labels)
        check.update(inputs=source, tolerance=cfg.tolerance if cfg.quantize == "none" else None)
        if cfg.quantize == "none" and not check["max_abs_diff"] <= cfg.tolerance:
            raise StageError(
                f"{model_file}: the {cfg.format} export differs from Keras by up to "
                f"{check['max_abs_diff']:.3g} on {source} (tolerance {cfg.tolerance:g}); "
                "nothing written"
            )
        record = {
            "format": cfg.format,
            "quantize": cfg.quantize,
            "artifact": ARTIFACTS[cfg.format],
            "source": str(model_file),
            "run": str(run) if run else None,
            "inputs": {t.name: [None, *t.shape[1:]] for t in model.inputs},
            "output_shape": [None, *model.outputs[0].shape[1:]],
            "classes": _classes(run),
            "rewritten_layers": info["rewrites"],
            "calibration": calibration,
            "check": check,
            "size_bytes": _size(artifact),
            "versions": export_versions(),
            "seconds": round(time.time() - started, 1),
        }
        atomic_write_text(tmp / EXPORT_RECORD, json.dumps(record, indent=2) + "\n")
        _install(tmp, out, cfg.force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # folders made for this export only, innermost first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    what = f"max |diff| {check['max_abs_diff']:.2g}, top-1 agreement {check['top1_agreement']:.3f}"
    logger.info("wrote %s: %s %s, %s on %s", out, cfg.format, cfg.quantize, what, source)
    return out
