"""Using a trained model: class probabilities of new videos, with or without a sensor recording.

A finished fusion run (``checkpoints/<dataset>/fusion/<run>``) holds everything a deployment
needs:

* ``deploy.keras``: the test-time inputs (the video; the generated sensor stream is inside) to the
  fused class probabilities of the rule chosen on validation (``fusion_best``);
* ``deploy_sensor.keras`` (when the validation split had sensor recordings): video **and the real
  sensor** in, the video + real-sensor fusion chosen on validation (``oracle_fusion``) out;
* ``export/onnx/model.onnx`` (optional, written by ``export.py RUN --format onnx``, and for
  ``deploy_sensor.keras`` by ``export.py RUN/deploy_sensor.keras --format onnx``): the same model
  for ONNX Runtime, checked against Keras when it was written;
* ``predictor.json`` (:data:`PREDICTOR_NAME`): the class names, which model takes which inputs,
  and per input how the training cache read the recording (the reader function and its
  parameters, :func:`vsfusion.data.readers.reader_spec`: frames, frame size, crop, sensor steps)
  and how the loader turned the cached array into a model input at test time (frames, crop, sensor
  length; :class:`vsfusion.data.modality.LoadOptions`).

:class:`Predictor` reads a new recording with those very functions (the reader, then the
modality's :meth:`~vsfusion.data.modality.Modality.validate` and
:meth:`~vsfusion.data.modality.Modality.load`), so a clip's prediction equals the fusion run's own
test prediction of that clip. It runs the model with Keras or, when the run has an ONNX export
(:data:`ENGINES`), with ONNX Runtime, which starts without importing Keras or TensorFlow. It takes a video file, a list of RGB frames (a webcam, a browser)
or a cached ``.npy`` clip, and optionally a sensor file (``.csv``/``.npy``) or array.

Example:
    >>> p = Predictor.load("checkpoints/UTD-MHAD/fusion/latest")  # doctest: +SKIP
    >>> probs = p.predict_video("clip.mp4")  # doctest: +SKIP
    >>> p.top_k(probs, 3)  # doctest: +SKIP
    [('wave', 0.91), ('clap', 0.05), ('draw_x', 0.01)]
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsfusion.data.errors import DataError
from vsfusion.inference.exported import ExportedModel, error_text, find_export

if TYPE_CHECKING:
    import keras

__all__ = [
    "DEPLOY_NAME",
    "DEPLOY_SENSOR_NAME",
    "ENGINES",
    "PREDICTOR_NAME",
    "Predictor",
    "capture_frames",
    "predictor_info",
    "top_k",
]

logger = logging.getLogger(__name__)

PREDICTOR_NAME = "predictor.json"
"""The fusion run's description of its deployable models and their inputs' preprocessing."""
DEPLOY_NAME = "deploy.keras"
DEPLOY_SENSOR_NAME = "deploy_sensor.keras"
FORMAT = 1
"""Version of :data:`PREDICTOR_NAME`'s layout."""

VIDEO = "video"
SENSOR = "sensor"
ENGINES: tuple[str, ...] = ("auto", "keras", "onnx")
"""What runs a model: ``keras`` loads the ``.keras`` file; ``onnx`` runs its ONNX export with ONNX
Runtime (no Keras or TensorFlow is imported; the export's probabilities matched Keras' to the
tolerance ``export.py`` checked); ``auto`` takes the ONNX export when there is one and ONNX Runtime
is installed, else Keras."""

#: Keys of ``predictor.json``'s ``models``: the test-time inputs of each model.
MODEL_KEYS = {False: VIDEO, True: f"{VIDEO}+{SENSOR}"}

#: Readers of a file whose in-memory counterpart is known: (module, name) -> the function taking
#: the frames or the array instead of a path, with the same keyword parameters.
_FRAME_READERS = {
    ("vsfusion.data.video", "read_clip"): ("vsfusion.data.video", "clip_from_frames"),
    ("vsfusion.data.utd_mhad", "read_rgb"): ("vsfusion.data.video", "clip_from_frames"),
}
_ARRAY_READERS = {
    ("vsfusion.data.folder", "read_sensor_file"): ("vsfusion.data.folder", "sensor_from_array")
}


def predictor_info(
    *,
    classes: Sequence[str],
    dataset: str,
    streams: Mapping[str, Any],
    loads: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, Mapping[str, Any]],
    missing: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The content of ``predictor.json`` (written by the fusion stage).

    Args:
        classes: Class names, in the models' output order.
        dataset: Dataset name (for messages).
        streams: Input name -> its :class:`~vsfusion.data.modality.StreamInfo` (the manifest's;
            its ``attrs["reader"]`` says how the cache read a recording).
        loads: Input name -> the test-time :class:`~vsfusion.data.modality.LoadOptions` fields
            (``num_frames``, ``crop_size``, ``frame_size``; ``length``).
        models: :data:`MODEL_KEYS` value -> ``{"file", "inputs", "row", "rule"}``.
        missing: :data:`MODEL_KEYS` value -> why that model is absent.

    Returns:
        A JSON-serialisable dict.

    Example:
        >>> from vsfusion.data.modality import StreamInfo
        >>> info = predictor_info(classes=["a", "b"], dataset="toy",
        ...     streams={"video": StreamInfo("rgb", (None, None, None, 3), 3)},
        ...     loads={"video": {"num_frames": 8, "crop_size": 32, "frame_size": None}},
        ...     models={"video": {"file": "deploy.keras", "inputs": ["video"]}})
        >>> info["inputs"]["video"]["load"]["num_frames"], info["classes"]
        (8, ['a', 'b'])
    """
    used = {name for m in models.values() for name in m["inputs"]}
    return {
        "format": FORMAT,
        "dataset": dataset,
        "classes": [str(c) for c in classes],
        "models": {k: dict(v) for k, v in models.items()},
        "missing": dict(missing or {}),
        "inputs": {
            name: {"stream": streams[name].to_json(), "load": dict(loads[name])}
            for name in sorted(used)
        },
    }


def top_k(probs: Any, classes: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, most probable first, as ``(name, probability)``.

    Ties keep the class order. ``k`` larger than the class count gives every class.

    Example:
        >>> top_k([0.1, 0.7, 0.2], ["a", "b", "c"], 2)
        [('b', 0.7), ('c', 0.2)]
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(p) != len(classes):
        raise ValueError(f"{len(p)} probabilities for {len(classes)} classes")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = np.argsort(-p, kind="stable")[:k]
    return [(str(classes[i]), float(p[i])) for i in order]


def capture_frames(
    index: int, seconds: float = 3.0, capture: Callable[[int], Any] | None = None
) -> list[np.ndarray]:
    """Read ``seconds`` of a camera as RGB frames (``cv2.VideoCapture(index)``).

    The frame count is ``seconds`` times the camera's frame rate (30 when it reports none).

    Args:
        index: Camera index (0: the first camera).
        seconds: Length of the clip to record.
        capture: Factory of the capture object (default ``cv2.VideoCapture``); anything with
            ``isOpened()``, ``get(prop)``, ``read()`` and ``release()``.

    Returns:
        RGB uint8 frames ``(H, W, 3)``, as :meth:`Predictor.predict_video` takes them.

    Raises:
        DataError: The camera cannot be opened or gives no frame.

    Example:
        >>> frames = capture_frames(0, seconds=2.0)  # doctest: +SKIP
    """
    import cv2

    from vsfusion.data.video import bgr_to_rgb

    cap = (capture or cv2.VideoCapture)(int(index))
    try:
        if not cap.isOpened():
            raise DataError(
                f"webcam {index}: cannot open it; check the index (0 is the first camera) and "
                "that no other program holds it"
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if math.isfinite(fps) and fps > 0 else 30.0
        frames = []
        for _ in range(max(1, round(seconds * fps))):
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frames.append(bgr_to_rgb(np.asarray(frame)))
    finally:
        cap.release()
    if not frames:
        raise DataError(f"webcam {index}: no frame could be read; check the camera")
    logger.info("webcam %d: %d frames at %.1f frames/s", index, len(frames), fps)
    return frames


def _read_json(path: Path, fix: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}); {fix}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object; {fix}")
    return data


def _rerun_hint(run: Path) -> str:
    """The command that (re)writes a fusion run's deployable models."""
    dataset, generator = "<dataset>", "<generator run>"
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        generator = metrics.get("generator_run") or generator
        dataset = run.parent.parent.name or dataset
    except (OSError, ValueError, AttributeError):
        pass
    return f"python valid_generator.py --dataset {dataset} --model_path {generator}"


def _resolve_run(path: str | os.PathLike) -> tuple[Path, str | None]:
    """The fusion run folder a model path names, and the model file named (if a file)."""
    p = Path(path)
    named = None
    hint = (
        "pass a fusion run (checkpoints/<dataset>/fusion/<run>, or its latest) or its deploy.keras"
    )
    if p.is_file() and p.name == "latest":
        p = p.parent / p.read_text().strip()
    elif p.is_file() and p.suffix == ".keras":
        p, named = p.parent, p.name
    elif p.is_dir() and not (p / DEPLOY_NAME).is_file() and (p / "latest").is_file():
        p = p / (p / "latest").read_text().strip()
    elif not p.exists():
        raise DataError(f"{path}: model not found; {hint}")
    if not p.is_dir() or not (p / DEPLOY_NAME).is_file():
        raise DataError(f"{path}: not a fusion run or a deploy.keras file; {hint}")
    return p, named


class Predictor:
    """A fusion run's deployable models with their inputs' preprocessing.

    Use :meth:`load`; then :meth:`predict_video` on a video file, frames or a cached clip, with an
    optional sensor recording. Models are loaded on first use (:meth:`model` loads one now).

    Attributes:
        run: The fusion run folder.
        classes: Class names, in the order of the probabilities.
        info: ``predictor.json``.
        engine: One of :data:`ENGINES`.
        compiled: Keras only: predict through the model's compiled function
            (``predict_on_batch``): its first call traces the graph (about 3.6 s for the X3D-XS fused model at 16x112x112 on 2
            cores), every later one is about 8x faster than an eager call (0.12 s against 1 s).
            Worth it from about four predictions on (a folder, a served page); off by default.
    """

    def __init__(
        self, run: Path, info: dict[str, Any], compiled: bool = False, engine: str = "auto"
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.run = Path(run)
        self.info = info
        self.compiled = bool(compiled)
        self.engine = engine
        self.classes: list[str] = [str(c) for c in info["classes"]]
        self._models: dict[bool, keras.Model | ExportedModel] = {}
        self._readers: dict[tuple[str, str], Callable[[Any], Any]] = {}
        self._warned: set[str] = set()

    @classmethod
    def load(
        cls, path: str | os.PathLike, compiled: bool = False, engine: str = "auto"
    ) -> Predictor:
        """The predictor of a fusion run.

        Args:
            path: A fusion run folder, the ``fusion`` folder of a dataset (its ``latest`` run),
                a ``latest`` file, or a model file (``deploy.keras``) inside a run.
            compiled: See :attr:`compiled`.
            engine: See :attr:`engine`.

        Raises:
            DataError: Not a fusion run, or a run without ``predictor.json`` (the message names
                the command that writes it).

        Example:
            >>> Predictor.load("checkpoints/demo/fusion/latest").classes[:2]  # doctest: +SKIP
            ['circle_high', 'circle_low']
        """
        run, named = _resolve_run(path)
        where = run / PREDICTOR_NAME
        hint = f"re-run the fusion stage to write it: {_rerun_hint(run)}"
        if not where.is_file():
            raise DataError(
                f"{run} has no {PREDICTOR_NAME} (made before predict.py, or a --from/--to stream "
                f"fusion run, which predict.py does not take); {hint}"
            )
        info = _read_json(where, hint)
        ok = (
            info.get("format") == FORMAT
            and isinstance(info.get("classes"), list)
            and isinstance(info.get("models"), dict)
            and isinstance(info.get("inputs"), dict)
            and MODEL_KEYS[False] in info["models"]
        )
        if not ok:
            raise DataError(f"{where}: not a predictor description of this version; {hint}")
        for key, entry in info["models"].items():
            wanted = [VIDEO, SENSOR] if key == MODEL_KEYS[True] else [VIDEO]
            takes = entry.get("inputs") if isinstance(entry, dict) else entry
            if not isinstance(takes, list) or sorted(takes) != sorted(wanted):
                raise DataError(
                    f"{where}: model {key!r} takes {takes}, not {' + '.join(wanted)}; predict.py "
                    "takes fusion runs of the video -> sensor pipeline"
                )
        files = {m.get("file") for m in info["models"].values() if isinstance(m, dict)}
        if named is not None and named not in files:
            raise DataError(
                f"{run / named}: not a deployable model of this run ({', '.join(sorted(files))}); "
                "pass the run folder or its deploy.keras"
            )
        return cls(run, info, compiled, engine)

    # -- models -----------------------------------------------------------------------------

    def has_sensor_model(self) -> bool:
        """Whether the run has the video + real-sensor model."""
        return MODEL_KEYS[True] in self.info["models"]

    def model_file(self, sensor: bool = False) -> Path:
        """The model file used with (``sensor=True``) or without a sensor recording.

        Raises:
            DataError: The run has no video + real-sensor model (the message says why).
        """
        key = MODEL_KEYS[bool(sensor)]
        entry = self.info["models"].get(key)
        if entry is None:
            why = self.info.get("missing", {}).get(key, "it was not written")
            raise DataError(
                f"{self.run} has no video + real-sensor model ({why}); predict without --sensor, "
                "or train on data whose validation split has sensor recordings and re-run "
                f"the fusion stage ({_rerun_hint(self.run)})"
            )
        return self.run / entry["file"]

    def runner_file(self, sensor: bool = False) -> Path:
        """The file that predicts with (``sensor=True``) or without a sensor recording: the
        :meth:`model_file` for Keras, its ONNX export for ONNX Runtime (see :attr:`engine`).

        Raises:
            DataError: ``engine="onnx"`` and the model has no ONNX export (the message names the
                command that writes one).
        """
        keras_file = self.model_file(sensor)
        if self.engine == "keras":
            return keras_file
        onnx = find_export(keras_file, "onnx")
        if onnx is None and self.engine == "onnx":
            raise DataError(
                f"{keras_file}: no ONNX export beside it; write one with python export.py "
                f"{keras_file} --format onnx, or predict with --engine keras"
            )
        if onnx is not None and (self.engine == "onnx" or _has_onnxruntime()):
            return onnx
        return keras_file

    def model(self, sensor: bool = False) -> keras.Model | ExportedModel:
        """The model used with (``sensor=True``) or without a sensor recording, loaded once: a
        Keras model, or an :class:`~vsfusion.inference.exported.ExportedModel` (ONNX Runtime)."""
        sensor = bool(sensor)
        if sensor not in self._models:
            path = self.runner_file(sensor)
            if path.suffix == ".onnx":
                self._models[sensor] = _open_onnx(path)
            else:
                from vsfusion.stages.common import load_model

                self._models[sensor] = load_model(path)
            logger.info("loaded %s", path)
        return self._models[sensor]

    def inputs(self, sensor: bool = False) -> list[str]:
        """The input names of the model used with or without a sensor recording."""
        self.model_file(sensor)
        return list(self.info["models"][MODEL_KEYS[bool(sensor)]]["inputs"])

    # -- preprocessing ----------------------------------------------------------------------

    def _input(self, name: str) -> tuple[Any, Any, dict[str, Any]]:
        """``(StreamInfo, LoadOptions, reader spec or {})`` of input ``name``."""
        from vsfusion.data.modality import LoadOptions, StreamInfo

        entry = self.info["inputs"].get(name)
        if not isinstance(entry, dict):
            raise DataError(f"{self.run / PREDICTOR_NAME}: no description of input {name!r}")
        stream = StreamInfo.from_json(entry["stream"])
        load = LoadOptions(train=False, **entry.get("load", {}))
        return stream, load, dict(stream.attrs.get("reader") or {})

    def _reader(self, spec: Mapping[str, Any], table: Mapping | None = None) -> Callable:
        from vsfusion.data.readers import reader_from_spec

        key = (str(spec.get("module")), str(spec.get("name")))
        if table is not None:
            if key not in table:
                raise KeyError(key)
            key = table[key]
        cache_key = (*key, json.dumps(spec.get("kwargs", {}), sort_keys=True))
        if cache_key not in self._readers:
            self._readers[cache_key] = reader_from_spec(
                {"module": key[0], "name": key[1], "kwargs": spec.get("kwargs", {})}
            )
        return self._readers[cache_key]

    def _video_spec(self, stream: Any) -> dict[str, Any]:
        spec = dict(stream.attrs.get("reader") or {})
        if spec:
            return spec
        from vsfusion.data.video import CACHE_FRAMES, CACHE_SIZE

        if "video" not in self._warned:
            self._warned.add("video")
            logger.warning(
                "%s: its dataset came as ready clips without a record of how they were made; "
                "reading videos as utils/videoprocess.py does by default (%d frames, %d px, "
                "centre crop), which may differ from the training clips",
                self.run,
                CACHE_FRAMES,
                CACHE_SIZE,
            )
        kwargs = {"num_frames": CACHE_FRAMES, "size": CACHE_SIZE, "crop": "centre"}
        return {"module": "vsfusion.data.video", "name": "read_clip", "kwargs": kwargs}

    def _finish(self, name: str, array: Any, where: str) -> np.ndarray:
        """The cache's check of a read recording, then the loader's test-time transform."""
        from vsfusion.data.modality import modality
        from vsfusion.data.readers import split_info

        stream, load, _ = self._input(name)
        spec = modality(stream.kind)
        attrs = {k: v for k, v in stream.attrs.items() if k != "reader"}
        array = spec.validate(split_info(array)[0], where, attrs)
        channels = int(array.shape[-1])
        if stream.channels and channels != stream.channels:
            raise DataError(
                f"{where}: {name} has {channels} channels, the model was trained on "
                f"{stream.channels}; pass a recording with the training data's channels"
            )
        out, _ = spec.load(array, stream, load, None, None)
        return np.asarray(out, dtype=np.float32)

    def _call(self, reader: Callable, source: Any, where: str, kind: str) -> Any:
        try:
            return reader(source)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a recording the reader cannot take
            name = getattr(getattr(reader, "func", reader), "__name__", "reader")
            raise DataError(
                f"{where}: this run's {kind} reader ({name}) could not read it "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
                f"pass a recording like the training data's"
            ) from None

    def prepare_video(self, video: Any) -> np.ndarray:
        """The model input of a video: float32 ``(T, S, S, C)``, as the loader gives it.

        Args:
            video: A video file (read like the training cache read its videos), a cached clip
                ``.npy`` (uint8 ``(T, H, W, C)``, the processed layout), or RGB uint8 frames (a
                sequence of ``(H, W, 3)`` or one ``(T, H, W, 3)`` array; sampled and resized as
                a video file would be).

        Raises:
            DataError: A missing, corrupt or unsuitable video (one line naming it).
        """
        stream, _, _ = self._input(VIDEO)
        if isinstance(video, str | os.PathLike):
            path = Path(video)
            if not path.is_file():
                raise DataError(f"{path}: video file not found; check the path")
            if path.suffix.lower() == ".npy":
                from vsfusion.data.io import load_npy

                return self._finish(VIDEO, np.asarray(load_npy(path, "video")), str(path))
            spec = self._video_spec(stream)
            clip = self._call(self._reader(spec), str(path), str(path), "video")
            return self._finish(VIDEO, clip, str(path))
        spec = self._video_spec(stream)
        try:
            reader = self._reader(spec, _FRAME_READERS)
        except KeyError:
            raise DataError(
                f"this run's clips were read by {spec.get('module')}.{spec.get('name')}, which "
                "takes files, not frames; pass a video file"
            ) from None
        return self._finish(VIDEO, self._call(reader, video, "frames", "video"), "frames")

    def prepare_sensor(self, sensor: Any) -> np.ndarray:
        """The model input of a sensor recording: float32 ``(steps, channels)``.

        Args:
            sensor: A ``.csv``/``.npy`` file read like the training cache read its recordings
                (then resampled as the loader does), or a ``(steps, channels)`` array of evenly
                spaced samples.

        Raises:
            DataError: A missing or unreadable file, a wrong shape or channel count, NaN values.
        """
        stream, _, spec = self._input(SENSOR)
        if isinstance(sensor, str | os.PathLike):
            path = Path(sensor)
            if not path.is_file():
                raise DataError(f"{path}: sensor file not found; check the path")
            if spec:
                data = self._call(self._reader(spec), str(path), str(path), "sensor")
            else:  # ready arrays (processed layout): the file as it is, as the cache stores it
                from vsfusion.data.folder import read_sensor_file

                data = read_sensor_file(str(path), steps=None)
            return self._finish(SENSOR, data, str(path))
        if not spec:  # ready arrays: checked, not resampled (the loader resamples below)
            spec = {"module": "vsfusion.data.folder", "name": "read_sensor_file"}
            spec["kwargs"] = {"steps": None}
        try:
            reader = self._reader(spec, _ARRAY_READERS)
        except KeyError:
            raise DataError(
                f"this run's recordings were read by {spec.get('module')}.{spec.get('name')}, "
                "which takes files, not arrays; pass a sensor file"
            ) from None
        return self._finish(SENSOR, reader(np.asarray(sensor)), "sensor")

    # -- prediction -------------------------------------------------------------------------

    def predict_video(self, video: Any, sensor: Any = None) -> np.ndarray:
        """Class probabilities of one video (and its sensor recording).

        Without ``sensor``: ``deploy.keras`` (video, and the sensor stream generated from it).
        With ``sensor``: ``deploy_sensor.keras`` (video + the real sensor, the fusion chosen on
        validation).

        Args:
            video: See :meth:`prepare_video`.
            sensor: None, or see :meth:`prepare_sensor`.

        Returns:
            float32 ``(K,)`` probabilities in :attr:`classes` order.

        Example:
            >>> p = Predictor.load("checkpoints/folder/fusion/latest")  # doctest: +SKIP
            >>> p.top_k(p.predict_video("wave.mp4", sensor="wave.csv"))  # doctest: +SKIP
            [('wave', 0.97), ...]
        """
        with_sensor = sensor is not None
        model = self.model(with_sensor)
        x = {VIDEO: self.prepare_video(video)[None]}
        if with_sensor:
            x[SENSOR] = self.prepare_sensor(sensor)[None]
        if isinstance(model, ExportedModel):
            return np.asarray(model(x), dtype=np.float32)[0]
        import keras

        x = {t.name: x[t.name] for t in model.inputs}
        out = model.predict_on_batch(x) if self.compiled else model(x, training=False)
        return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)[0]

    def top_k(self, probs: Any, k: int = 5) -> list[tuple[str, float]]:
        """:func:`top_k` with this run's class names."""
        return top_k(probs, self.classes, k)


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _open_onnx(path: Path) -> ExportedModel:
    """ONNX Runtime's session of an export, with a one-line error when it cannot open it."""
    try:
        return ExportedModel(path, "onnx")
    except ImportError:
        raise DataError(
            f"{path}: ONNX Runtime is not installed; pip install onnxruntime, or predict with "
            "--engine keras"
        ) from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types for a bad file
        raise DataError(
            f"{path}: ONNX Runtime cannot open it ({error_text(exc, 160)}); "
            "re-export it with export.py --force, or predict with --engine keras"
        ) from None
