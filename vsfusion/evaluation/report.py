"""Result files of an evaluation run: ``results.json``, ``results.md``, plots and seed tables.

One run (one dataset, one seed) is described by the dict of :func:`build_results`::

    {"dataset": str, "n_train": int, "n_val": int, "n_test": int, "seed": int,
     "accuracy": {stream: float | None},    # every STREAMS row, then the run's other rows
     "macro_f1": {stream: float | None},
     "mcnemar_p": float | None,
     "extra": {...}}            # only when given: top-5, chosen fusion rule, timings, ...

Accuracies and F1 scores are fractions in ``[0, 1]``; a stream that was not evaluated is
``None`` (``null`` in JSON, "—" in Markdown). The rows are the known rows of :data:`STREAMS`
(always present, so two-stream runs read as they always did) and then whatever other streams a
run reports (an N-way fusion's streams and rows), listed before the ``baseline_*`` rows. :func:`write_results` writes the JSON and the
Markdown table atomically; :func:`aggregate_seeds` and :func:`aggregate_markdown` summarise
several seeds as mean ± standard deviation, per-seed values and tests pooled over seeds.

:func:`results_markdown` gives these ``extra`` keys sections of their own (other keys are
listed under "Details"): ``missing_modality`` (which row answers each test-time input),
``mcnemar_tests`` (paired exact McNemar tests), ``selection`` (what the fusion rules were
chosen on), ``deploy`` (the one-file fused predictor, its inputs and rule), ``figures`` (title ->
image file, relative to ``results.md``) and ``baselines``.
:func:`plot_embedding_tsne` and :func:`plot_per_class_delta` draw two of those figures;
:func:`plot_training_curves` draws a training run's ``curves.png`` from its history CSVs.

Example:
    >>> r = build_results("utd_mhad", 400, 80, 381, 0, {"video": 0.85}, {"video": 0.84}, None)
    >>> r["accuracy"]["video"], r["accuracy"]["fusion_sum"]
    (0.85, None)
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from vsfusion.evaluation.metrics import per_class_recall_change

__all__ = [
    "STREAMS",
    "aggregate_markdown",
    "stream_order",
    "aggregate_seeds",
    "build_results",
    "plot_confusion",
    "plot_embedding_tsne",
    "plot_per_class_delta",
    "plot_training_curves",
    "read_history",
    "results_markdown",
    "write_per_class_report",
    "write_results",
]

logger = logging.getLogger(__name__)

#: The known rows, in table order (any other stream name a run reports is accepted too and
#: listed after the known deep rows, before the baselines; see :func:`stream_order`):
#:
#: * ``video``, ``sensor`` (real sensors, when the test split has them), ``generated_sensor``
#:   (the sensor head on the generator's synthetic sensor embedding);
#: * ``fusion_<rule>``: video fused with the generated sensor by each rule, and ``fusion_best``,
#:   the rule chosen on the validation / out-of-fold pool (never on the test split);
#: * the controls without any sensor: ``video_head_control`` (a head of the generator's size
#:   trained with plain cross-entropy on the same frozen video embedding) and ``video_ensemble``
#:   (a second video network with the budget of a generator that has its own trunk); each
#:   ``*_fusion`` row is that control fused with video by the same selection as ``fusion_best``;
#: * ``oracle_fusion``: video fused with the real sensor, selected the same way;
#: * the ``baseline_*`` rows (classical scikit-learn models of the baselines stage, the floor a
#:   deep stream must clear) come last.
STREAMS: tuple[str, ...] = (
    "video",
    "sensor",
    "generated_sensor",
    "fusion_sum",
    "fusion_weighted",
    "fusion_product",
    "fusion_max",
    "fusion_learned",
    "fusion_best",
    "video_head_control",
    "video_head_control_fusion",
    "video_ensemble",
    "video_ensemble_fusion",
    "oracle_fusion",
    "baseline_sensor",
    "baseline_video",
)

_METRICS = ("accuracy", "macro_f1")
_BASELINES = ("baseline_sensor", "baseline_video")
# Baseline rows of further streams: listed (last) only when a run has them.
_OTHER_BASELINES = ("baseline_skeleton",)
_BASELINE_NOTE = (
    "baseline_* rows: scikit-learn models on hand-made features (sensor summary statistics; "
    "depth motion maps or RGB motion images), the floor a deep stream must clear."
)
_CONTROLS = (
    "video_head_control",
    "video_head_control_fusion",
    "video_ensemble",
    "video_ensemble_fusion",
)
_CONTROL_NOTE = (
    "Control rows (no sensor at all): video_head_control is a head of the generator's size "
    "trained with plain cross-entropy on the same frozen video embedding; video_ensemble is a "
    "second video network with the generator's own-trunk budget; *_fusion is that control fused "
    "with video by the same selection as fusion_best."
)
#: ``extra`` keys rendered as sections of their own rather than under "Details".
_SECTION_KEYS = (
    "mcnemar_pair",
    "baselines",
    "missing_modality",
    "mcnemar_tests",
    "selection",
    "figures",
    "deploy",
)
_DASH = "—"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Writes ``path`` through a temporary file in the same folder, then renames it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    return _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _score(value: Any, what: str) -> float | None:
    """Checks a metric value: ``None`` or a finite float in ``[0, 1]``."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number or None, got {value!r}") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"{what} must be a fraction in [0, 1] (not a percentage), got {value!r}")
    return number


def _check_stream_name(name: Any, metric: str) -> str:
    """A stream name: a non-empty string that fits in one Markdown table cell."""
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "|\n\r"):
        raise ValueError(
            f"bad stream name {name!r} in {metric}: use a non-empty name without '|' or line "
            "breaks, e.g. 'fusion_weighted'"
        )
    return name


def stream_order(names: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """The table order of a run's rows: every known row of :data:`STREAMS`, other names inserted.

    Known rows keep their :data:`STREAMS` order; other names follow the known deep rows in the
    order given, before the ``baseline_*`` rows.

    Args:
        names: The run's stream names (a mapping's keys are used).

    Returns:
        All of :data:`STREAMS` plus the other names, in table order.

    Example:
        >>> order = stream_order(["video", "fusion_depth"])
        >>> order[-3:]
        ['fusion_depth', 'baseline_sensor', 'baseline_video']
    """
    others = [n for n in dict.fromkeys(names) if n not in STREAMS and n not in _OTHER_BASELINES]
    deep = [s for s in STREAMS if s not in _BASELINES]
    extra = [b for b in _OTHER_BASELINES if b in names]
    return [*deep, *others, *_BASELINES, *extra]


def _stream_scores(
    scores: Mapping[str, Any] | None, metric: str, names: Sequence[str] = ()
) -> dict[str, float | None]:
    """Maps every known stream and each other name (``names``', then ``scores``') to its score."""
    scores = dict(scores or {})
    for name in scores:
        _check_stream_name(name, metric)
    order = stream_order([*names, *scores])
    return {s: _score(scores.get(s), f"{metric}[{s!r}]") for s in order}


def _count(value: Any, what: str) -> int:
    """Checks a non-negative integer (split sizes, seeds)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be non-negative, got {value!r}")
    return int(value)


def _plain(value: Any) -> Any:
    """Converts numpy scalars/arrays, paths and tuples to plain JSON types; NaN/inf become None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise ValueError(f"value {value!r} of type {type(value).__name__} cannot be stored in JSON")


def _percent(value: float | None) -> str:
    """Formats a fraction as a percentage with one decimal, or a dash for None."""
    return _DASH if value is None else f"{100.0 * value:.1f}"


def _format_p(p: float | None) -> str:
    """Formats a p-value for the Markdown tables."""
    if p is None:
        return _DASH
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _fraction_or_none(value: Any) -> float | None:
    """A metric read from a results dict: a finite float, or None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _inline(value: Any) -> str:
    """One-line readable text of a (possibly nested) JSON value for the Markdown sections."""
    if value is None:
        return _DASH
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_nested(v)}" for k, v in value.items()) or _DASH
    if isinstance(value, (list, tuple)):
        separator = "; " if any(isinstance(v, (Mapping, list, tuple)) for v in value) else ", "
        return separator.join(_nested(v) for v in value) or _DASH
    return str(value)


def _nested(value: Any) -> str:
    """:func:`_inline` of a value inside another, parenthesised when it is a non-empty container."""
    text = _inline(value)
    if isinstance(value, (Mapping, list, tuple)) and value and len(value) > 1:
        return f"({text})"
    return text


def _bullets(items: Mapping[str, Any], indent: int = 0) -> list[str]:
    """Markdown bullets of a mapping; sub-mappings that hold containers get bullets of their own."""
    pad = " " * indent
    lines = []
    for key, value in items.items():
        if isinstance(value, Mapping) and any(
            isinstance(v, (Mapping, list, tuple)) for v in value.values()
        ):
            lines.append(f"{pad}- {key}:")
            lines += _bullets(value, indent + 2)
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, Mapping) for v in value)
        ):
            lines.append(f"{pad}- {key}:")
            lines += [f"{pad}  - {_inline(v)}" for v in value]
        else:
            lines.append(f"{pad}- {key}: {_inline(value)}")
    return lines


def _mcnemar_table(tests: Sequence[Any]) -> list[str]:
    """Table lines of paired McNemar tests (``{"pair": [a, b], "b", "c", "p_value", ...}``)."""
    lines = [
        "| comparison | only a right | only b right | p (exact McNemar) |",
        "|---|---:|---:|---:|",
    ]
    for test in tests:
        if not isinstance(test, Mapping):
            continue
        pair = test.get("pair")
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            comparison = f"a = {pair[0]} vs b = {pair[1]}"
        else:
            comparison = _inline(pair)
        p_value = _fraction_or_none(test.get("p_value"))
        lines.append(
            f"| {comparison} | {_inline(test.get('b'))} | {_inline(test.get('c'))} | "
            f"{_format_p(p_value)} |"
        )
    return lines


def _missing_modality_table(matrix: Any, results: Mapping[str, Any]) -> list[str]:
    """Table lines of ``extra["missing_modality"]``.

    Accepts the fusion stage's ``{input: {"stream": row, "rule": str | None}}`` and a list of
    ``{"input", "row", "accuracy", "macro_f1", "rule"}`` dicts; a missing accuracy or macro-F1
    is looked up in the run's stream table.
    """
    if isinstance(matrix, Mapping):
        entries = [
            {"input": name, **(entry if isinstance(entry, Mapping) else {"row": entry})}
            for name, entry in matrix.items()
        ]
    else:
        entries = [e for e in matrix if isinstance(e, Mapping)]
    lines = [
        "| test-time input | row | accuracy | macro F1 | rule chosen |",
        "|---|---|---:|---:|---|",
    ]
    for entry in entries:
        row = entry.get("row", entry.get("stream"))
        scores = []
        for metric in _METRICS:
            value = entry.get(metric)
            if value is None and isinstance(row, str):
                value = (results.get(metric) or {}).get(row)
            scores.append(_percent(_fraction_or_none(value)))
        lines.append(
            f"| {_inline(entry.get('input'))} | {_inline(row)} | {scores[0]} | {scores[1]} | "
            f"{_inline(entry.get('rule'))} |"
        )
    return lines


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def build_results(
    dataset: str,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    accuracy: Mapping[str, float | None],
    macro_f1: Mapping[str, float | None],
    mcnemar_p: float | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Builds the results dict of one run, checking every value.

    Args:
        dataset: Dataset name.
        n_train: Number of training samples.
        n_val: Number of validation samples.
        n_test: Number of test samples.
        seed: The run's random seed.
        accuracy: Top-1 accuracy per stream, fractions in ``[0, 1]``; known streams
            (:data:`STREAMS`) left out are stored as ``None``; other names (an N-way fusion's
            streams) are stored after the known deep rows.
        macro_f1: Macro-F1 per stream, same convention.
        mcnemar_p: Exact McNemar p-value of the paired comparison the run reports (e.g. the
            best fusion against video only), or ``None``.
        extra: Optional JSON-serialisable details (top-5 accuracies, the chosen fusion weight,
            the best fusion's name, timings, ...). Numpy values are converted to plain Python
            types and NaN/inf to ``None``. By convention ``extra["mcnemar_pair"] = [a, b]``
            names the two streams the McNemar test compared (shown in the Markdown).

    Returns:
        ``{"dataset", "n_train", "n_val", "n_test", "seed", "accuracy", "macro_f1",
        "mcnemar_p"}`` plus ``"extra"`` when ``extra`` is given.

    Raises:
        ValueError: On a stream name that is empty or holds ``|`` or a line break, a score
            outside ``[0, 1]`` (e.g. a percentage), a negative split size, or an ``extra`` that
            cannot be stored in JSON.

    Example:
        >>> r = build_results("demo", 10, 2, 5, 1, {"video": 0.8}, {"video": 0.75}, 0.5)
        >>> sorted(r)
        ['accuracy', 'dataset', 'macro_f1', 'mcnemar_p', 'n_test', 'n_train', 'n_val', 'seed']
    """
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty string, got {dataset!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    names = [*(accuracy or {}), *(macro_f1 or {})]
    results: dict[str, Any] = {
        "dataset": dataset,
        "n_train": _count(n_train, "n_train"),
        "n_val": _count(n_val, "n_val"),
        "n_test": _count(n_test, "n_test"),
        "seed": int(seed),
        "accuracy": _stream_scores(accuracy, "accuracy", names),
        "macro_f1": _stream_scores(macro_f1, "macro_f1", names),
        "mcnemar_p": _score(mcnemar_p, "mcnemar_p"),
    }
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise ValueError(f"extra must be a dict, got {type(extra).__name__}")
        results["extra"] = _plain(extra)
    return results


def results_markdown(results: Mapping[str, Any]) -> str:
    """Renders one run's results as Markdown: a header and one table row per stream.

    Args:
        results: A dict from :func:`build_results` (or read back from ``results.json``).

    Returns:
        Markdown text: dataset, seed and split sizes, a table of accuracy and macro-F1 in
        percent with one decimal, one row per stream of :func:`stream_order` ("—" for streams
        not evaluated), notes on the baseline and
        control rows when they were evaluated, and the McNemar p-value line. When ``extra``
        holds them, sections follow for ``mcnemar_tests`` ("Paired tests"),
        ``missing_modality`` ("Missing-modality matrix"), ``selection``, ``deploy``
        ("Deployable model"), ``baselines`` and ``figures`` (image links), then every other ``extra`` entry under "Details".

    Example:
        >>> r = build_results("demo", 10, 2, 5, 1, {"video": 0.8}, {"video": 0.75}, 0.0386)
        >>> "| video | 80.0 | 75.0 |" in results_markdown(r)
        True
    """
    lines = [
        f"# Results: {results['dataset']}",
        "",
        f"Seed {results['seed']}; split sizes: train {results['n_train']}, "
        f"val {results['n_val']}, test {results['n_test']}.",
        "",
        "| Stream | Accuracy (%) | Macro-F1 (%) |",
        "|---|---:|---:|",
    ]
    accuracy = results.get("accuracy", {})
    f1 = results.get("macro_f1", {})
    for stream in stream_order([*accuracy, *f1]):
        lines.append(
            f"| {stream} | {_percent(accuracy.get(stream))} | {_percent(f1.get(stream))} |"
        )
    extra = results.get("extra") or {}
    if any(accuracy.get(s) is not None for s in (*_BASELINES, *_OTHER_BASELINES)):
        lines += ["", _BASELINE_NOTE]
    if any(accuracy.get(s) is not None or f1.get(s) is not None for s in _CONTROLS):
        lines += ["", _CONTROL_NOTE]
    pair = extra.get("mcnemar_pair")
    compared = f" ({pair[0]} vs {pair[1]})" if isinstance(pair, list) and len(pair) == 2 else ""
    lines += ["", f"McNemar exact test{compared}: p = {_format_p(results.get('mcnemar_p'))}"]
    tests = extra.get("mcnemar_tests")
    if isinstance(tests, (list, tuple)) and tests:
        lines += ["", "## Paired tests (exact McNemar on the test split)", ""]
        lines += _mcnemar_table(tests)
    matrix = extra.get("missing_modality")
    if isinstance(matrix, (Mapping, list, tuple)) and matrix:
        lines += [
            "",
            "## Missing-modality matrix",
            "",
            "Accuracy and macro F1 in percent on the test split; the rule was chosen without it.",
            "",
        ]
        lines += _missing_modality_table(matrix, results)
    selection = extra.get("selection")
    if selection:
        lines += ["", "## Selection", ""]
        if isinstance(selection, Mapping):
            lines += _bullets(selection)
        else:
            lines.append(f"- {_inline(selection)}")
    deploy = extra.get("deploy")
    if isinstance(deploy, Mapping) and deploy:
        lines += ["", "## Deployable model", ""]
        lines += _bullets(deploy)
    chosen = extra.get("baselines")
    if isinstance(chosen, Mapping) and chosen:
        lines += ["", "## Baselines (chosen by leave-one-subject-out on the training subjects)", ""]
        for row, info in chosen.items():
            loso = info.get("loso_accuracy")
            lines.append(
                f"- {row}: {info.get('features')} -> {info.get('model')} "
                f"{json.dumps(info.get('params'))}, LOSO accuracy "
                f"{_percent(loso)}% over subjects {', '.join(info.get('loso_folds') or [])}"
            )
    figures = extra.get("figures")
    if isinstance(figures, Mapping) and figures:
        lines += ["", "## Figures", ""]
        for title, file in figures.items():
            lines += [f"![{title}]({file})", ""]
        lines.pop()
    details = {k: v for k, v in extra.items() if k not in _SECTION_KEYS}
    if details:
        lines += ["", "## Details", ""]
        for key, value in details.items():
            shown = f"{value:.4g}" if isinstance(value, float) else json.dumps(value)
            if isinstance(value, str):
                shown = value
            lines.append(f"- {key}: {shown}")
    return "\n".join(lines) + "\n"


def write_results(out_dir: str | os.PathLike, results: Mapping[str, Any]) -> tuple[Path, Path]:
    """Writes ``results.json`` and ``results.md`` into ``out_dir`` (created if needed).

    Each file is written to a temporary file in ``out_dir`` and renamed into place, so a
    crash never leaves a half-written result behind.

    Args:
        out_dir: Output folder, typically the run directory.
        results: A dict from :func:`build_results`.

    Returns:
        The paths of ``results.json`` and ``results.md``.

    Example:
        >>> import tempfile
        >>> r = build_results("demo", 10, 2, 5, 1, {"video": 0.8}, {}, None)
        >>> json_path, md_path = write_results(tempfile.mkdtemp(), r)
        >>> json_path.name, md_path.name
        ('results.json', 'results.md')
    """
    out = Path(out_dir)
    text = json.dumps(_plain(results), indent=2, allow_nan=False) + "\n"
    json_path = _write_text(out / "results.json", text)
    md_path = _write_text(out / "results.md", results_markdown(results))
    logger.info("wrote %s and %s", json_path, md_path)
    return json_path, md_path


def plot_confusion(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Path:
    """Saves a confusion matrix as a PNG (matplotlib Agg canvas, no pyplot, atomic write).

    Colours show row-normalised rates (recall per true class) when ``normalize`` is true, raw
    counts otherwise; cells are annotated with counts when there are at most 30 classes.

    Args:
        cm: ``(K, K)`` counts, rows = true class, columns = predicted class.
        class_names: ``K`` class names.
        path: Output ``.png`` path (folders are created).
        title: Figure title.
        normalize: Colour by row-normalised rate instead of count.

    Returns:
        The written path.

    Raises:
        ValueError: If ``cm`` is not square or does not match ``class_names``.

    Example:
        >>> import tempfile, os
        >>> p = plot_confusion(np.eye(2, dtype=int), ["a", "b"], os.path.join(tempfile.mkdtemp(), "cm.png"))
        >>> p.suffix
        '.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(cm)
    k = len(class_names)
    if counts.ndim != 2 or counts.shape != (k, k):
        raise ValueError(
            f"cm must be a square ({k}, {k}) matrix for {k} class names, got {counts.shape}"
        )
    if normalize:
        rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
        shown = np.divide(
            counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0
        )
        vmax = 1.0
    else:
        shown = counts.astype(np.float64)
        vmax = max(float(shown.max()), 1.0)

    size = min(4.0 + 0.35 * k, 24.0)
    fig = Figure(figsize=(size, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label("Fraction of the true class" if normalize else "Count")
    ticks = np.arange(k)
    fontsize = 8 if k <= 30 else 6
    ax.set_xticks(ticks, labels=[str(c) for c in class_names], rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels=[str(c) for c in class_names], fontsize=fontsize)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if shown[i, j] > 0.5 * vmax else "black"
                    ax.text(
                        j,
                        i,
                        f"{counts[i, j]:g}",
                        ha="center",
                        va="center",
                        color=colour,
                        fontsize=fontsize,
                    )
    fig.tight_layout()
    out = _atomic_write(path, lambda handle: fig.savefig(handle, format="png"))
    logger.info("wrote confusion matrix %s", out)
    return out


def _class_colours(k: int) -> np.ndarray:
    """``(k, 4)`` RGBA colours, one per class: tab10/tab20 when they suffice, else turbo."""
    import matplotlib

    if k <= 10:
        return np.asarray(matplotlib.colormaps["tab10"](np.arange(k)))
    if k <= 20:
        return np.asarray(matplotlib.colormaps["tab20"](np.arange(k)))
    return np.asarray(matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, k)))


def _embedding(value: Any, name: str) -> np.ndarray:
    """Checks an ``(N, D)`` array of finite embedding values."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric (N, D) array") from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D (N, D) array with D >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def plot_embedding_tsne(
    real: np.ndarray,
    generated: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "t-SNE of real and generated sensor embeddings",
    seed: int = 0,
) -> Path:
    """Saves a t-SNE map of real and generated sensor embeddings as a PNG (Agg, atomic write).

    The two sets are embedded together (scikit-learn ``TSNE`` with ``init="pca"``,
    ``random_state=seed`` and perplexity ``min(30, (2N - 1) / 3)``, at least 2) and drawn in one
    scatter plot: colour = class, marker ``o`` = real, ``x`` = generated. A generator whose
    crosses sit on the circles of their class imitates the sensor embedding well. The legend
    names the two markers and, with at most 12 classes present, the classes.

    Args:
        real: Real sensor embeddings, ``(N, D)``.
        generated: Generated sensor embeddings of the same ``N`` samples, ``(N, D)``.
        labels: Class index of each sample, int ``(N,)``.
        class_names: Class names; ``labels`` index into them.
        path: Output ``.png`` path (folders are created).
        title: Figure title.
        seed: t-SNE random state.

    Returns:
        The written path.

    Raises:
        ValueError: If ``real`` and ``generated`` differ in shape, are not 2-D or hold NaN/inf,
            if ``labels`` does not hold ``N`` class indices in ``[0, len(class_names))``, or if
            ``N < 2``.

    Example:
        >>> import tempfile, os
        >>> rng = np.random.default_rng(0)
        >>> real = rng.normal(size=(6, 4))
        >>> p = plot_embedding_tsne(real, real + 0.1, [0, 0, 1, 1, 2, 2], ["a", "b", "c"],
        ...                         os.path.join(tempfile.mkdtemp(), "tsne.png"))
        >>> p.suffix
        '.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    real_arr = _embedding(real, "real")
    generated_arr = _embedding(generated, "generated")
    if real_arr.shape != generated_arr.shape:
        raise ValueError(
            f"real and generated must have the same (N, D) shape, got {real_arr.shape} and "
            f"{generated_arr.shape}"
        )
    n = real_arr.shape[0]
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 samples per set, got {n}")
    k = len(class_names)
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must be a vector of {n} class indices, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) and not (
        np.issubdtype(y.dtype, np.number) and np.all(np.mod(y, 1) == 0)
    ):
        raise ValueError(f"labels must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must be class indices in [0, {k}), got {y.min()}..{y.max()}")

    points = np.concatenate([real_arr, generated_arr])
    n_total = points.shape[0]
    perplexity = max(2.0, min(30.0, (n_total - 1) / 3.0))
    # PCA initialisation needs two input dimensions; a 1-D embedding starts at random.
    init = "pca" if points.shape[1] >= 2 else "random"
    tsne = TSNE(n_components=2, perplexity=perplexity, init=init, random_state=seed)
    # One OpenMP thread: next to TensorFlow's thread pools the Barnes-Hut threads spin-wait
    # (seconds for a dozen points); a test split's few thousand points take seconds on one.
    with threadpool_limits(limits=1, user_api="openmp"):
        xy = tsne.fit_transform(points)

    colours = _class_colours(k)
    fig = Figure(figsize=(7.5, 6.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(
        xy[:n, 0],
        xy[:n, 1],
        marker="o",
        facecolors="none",
        edgecolors=colours[y],
        s=36,
        linewidths=1.2,
    )
    ax.scatter(xy[n:, 0], xy[n:, 1], marker="x", c=colours[y], s=36, linewidths=1.2)
    handles = [
        Line2D(
            [], [], marker="o", linestyle="", markerfacecolor="none", color="dimgray", label="real"
        ),
        Line2D([], [], marker="x", linestyle="", color="dimgray", label="generated"),
    ]
    present = np.unique(y)
    if present.size <= 12:
        handles += [
            Line2D([], [], marker="s", linestyle="", color=colours[c], label=str(class_names[c]))
            for c in present
        ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    out = _atomic_write(path, lambda handle: fig.savefig(handle, format="png", bbox_inches="tight"))
    logger.info("wrote t-SNE plot %s", out)
    return out


def plot_per_class_delta(
    y: np.ndarray,
    pred_base: np.ndarray,
    pred_new: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    base_name: str = "video",
    new_name: str = "fusion_best",
    title: str | None = None,
) -> Path:
    """Saves the per-class change in accuracy from ``pred_base`` to ``pred_new`` as a PNG.

    One horizontal bar per class present in ``y``: the change of its recall (accuracy on that
    class) in percentage points, green for gains and red for losses, sorted so the largest gain
    is on top. Classes absent from ``y`` are left out. Agg canvas, atomic write.

    Args:
        y: True labels, int ``(N,)``.
        pred_base: Predictions of the reference stream, int ``(N,)``.
        pred_new: Predictions of the compared stream, int ``(N,)``.
        class_names: Class names; row ``i`` describes class index ``i``.
        path: Output ``.png`` path (folders are created).
        base_name: Name of the reference stream (axis label).
        new_name: Name of the compared stream (axis label).
        title: Figure title; a default naming both streams when None.

    Returns:
        The written path.

    Raises:
        ValueError: On mismatched lengths or labels outside ``[0, len(class_names))``.

    Example:
        >>> import tempfile, os
        >>> p = plot_per_class_delta([0, 0, 1], [0, 1, 1], [0, 0, 0], ["a", "b"],
        ...                          os.path.join(tempfile.mkdtemp(), "delta.png"))
        >>> p.name
        'delta.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(class_names)
    change = 100.0 * per_class_recall_change(y, pred_base, pred_new, k)
    shown = np.flatnonzero(~np.isnan(change))
    shown = shown[np.argsort(change[shown], kind="stable")]  # barh draws the first at the bottom
    values = change[shown]
    names = [str(class_names[i]) for i in shown]

    height = min(max(3.0, 1.5 + 0.28 * len(shown)), 40.0)
    fig = Figure(figsize=(7.0, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if len(shown):
        colours = np.where(values > 0, "#2ca02c", np.where(values < 0, "#d62728", "#7f7f7f"))
        positions = np.arange(len(shown))
        ax.barh(positions, values, color=colours)
        fontsize = 8 if len(shown) <= 40 else 6
        ax.set_yticks(positions, labels=names, fontsize=fontsize)
        limit = max(float(np.max(np.abs(values))), 1.0) * 1.15
        ax.set_xlim(-limit, limit)
        if len(shown) <= 60:
            for position, value in zip(positions, values, strict=True):
                ax.text(
                    value,
                    position,
                    f" {value:+.1f} " if value else " 0 ",
                    va="center",
                    ha="left" if value >= 0 else "right",
                    fontsize=fontsize,
                )
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no test samples", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Change in per-class accuracy, {base_name} to {new_name} (percentage points)")
    ax.set_title(title or f"Per-class accuracy change: {base_name} to {new_name}")
    fig.tight_layout()
    out = _atomic_write(path, lambda handle: fig.savefig(handle, format="png"))
    logger.info("wrote per-class change plot %s", out)
    return out


def write_per_class_report(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Writes a per-class report (see ``metrics.per_class_report``) atomically.

    The format follows the suffix: ``.md`` gives a Markdown table (precision, recall and F1 in
    percent with one decimal), anything else CSV with the raw fractions.

    Args:
        df: The per-class DataFrame (index = class name).
        path: Output path, ``.csv`` or ``.md``.

    Returns:
        The written path.

    Example:
        >>> import tempfile, os
        >>> df = pd.DataFrame({"precision": [1.0], "recall": [0.5], "f1": [0.667], "support": [2]},
        ...                   index=pd.Index(["a"], name="class"))
        >>> write_per_class_report(df, os.path.join(tempfile.mkdtemp(), "per_class.csv")).name
        'per_class.csv'
    """
    path = Path(path)
    if path.suffix.lower() == ".md":
        columns = list(df.columns)
        lines = [
            "| class | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for name, row in df.iterrows():
            cells = []
            for column in columns:
                value = row[column]
                if column in ("precision", "recall", "f1"):
                    cells.append(_percent(float(value)))
                else:
                    cells.append(
                        f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)
                    )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        text = "\n".join(lines) + "\n"
    else:
        text = df.to_csv(float_format="%.6f")
    return _write_text(path, text)


# --------------------------------------------------------------------------------------------
# Several seeds
# --------------------------------------------------------------------------------------------


def aggregate_seeds(
    results_list: Sequence[Mapping[str, Any]],
    paired_tests: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Summarises runs of one dataset over several seeds as mean and standard deviation.

    For each stream and metric the mean and the sample standard deviation (``ddof=1``; ``None``
    with fewer than two values) are taken over the seeds where the stream was evaluated; the
    per-seed values are kept alongside.

    Args:
        results_list: Results dicts from :func:`build_results` (or ``results.json`` files
            read back), all for the same dataset.
        paired_tests: Optional paired tests pooled over the seeds, e.g.
            ``[{"pair": [a, b], **metrics.pooled_mcnemar(groups)}, ...]``; stored as given
            (converted to plain JSON types).

    Returns:
        ``{"dataset": str, "seeds": [int, ...], "n_runs": int,
        "accuracy": {stream: {"mean": float | None, "std": float | None, "n": int,
        "values": [float | None, ...]}}, "macro_f1": {... same ...},
        "mcnemar_p": [float | None, ...], "paired_tests": [...],
        "best_fusion_per_seed": [str | None, ...]}``: ``values``, ``mcnemar_p`` and
        ``best_fusion_per_seed`` (each run's ``extra["best_fusion_rule"]``) have one entry per
        run, in the order of ``results_list``.

    Raises:
        ValueError: On an empty list, runs from different datasets, or ``paired_tests`` that
            is not a list of dicts.

    Example:
        >>> runs = [build_results("d", 1, 1, 1, s, {"video": a}, {}, None)
        ...         for s, a in [(0, 0.8), (1, 0.9)]]
        >>> agg = aggregate_seeds(runs)
        >>> round(agg["accuracy"]["video"]["mean"], 3), agg["accuracy"]["video"]["n"]
        (0.85, 2)
    """
    runs = list(results_list)
    if not runs:
        raise ValueError("aggregate_seeds needs at least one results dict")
    datasets = sorted({str(r["dataset"]) for r in runs})
    if len(datasets) != 1:
        raise ValueError(f"cannot aggregate runs of different datasets: {datasets}")
    seeds = [int(r["seed"]) for r in runs]
    if len(set(seeds)) != len(seeds):
        logger.warning("aggregating runs with repeated seeds: %s", seeds)

    tests = [] if paired_tests is None else list(paired_tests)
    if not all(isinstance(t, Mapping) for t in tests):
        raise ValueError("paired_tests must be a list of dicts (one per compared pair)")

    aggregate: dict[str, Any] = {"dataset": datasets[0], "seeds": seeds, "n_runs": len(runs)}
    streams = stream_order([s for r in runs for m in _METRICS for s in r.get(m) or {}])
    for metric in _METRICS:
        table = {}
        for stream in streams:
            values = [(r.get(metric) or {}).get(stream) for r in runs]
            present = np.array([v for v in values if v is not None], dtype=np.float64)
            mean = float(present.mean()) if present.size else None
            std = float(present.std(ddof=1)) if present.size >= 2 else None
            table[stream] = {
                "mean": mean,
                "std": std,
                "n": int(present.size),
                "values": [None if v is None else float(v) for v in values],
            }
        aggregate[metric] = table
    aggregate["mcnemar_p"] = [r.get("mcnemar_p") for r in runs]
    aggregate["paired_tests"] = _plain(tests)
    aggregate["best_fusion_per_seed"] = [
        (r.get("extra") or {}).get("best_fusion_rule") for r in runs
    ]
    return aggregate


def aggregate_markdown(aggregate: Mapping[str, Any]) -> str:
    """Renders :func:`aggregate_seeds` output as a Markdown table of mean ± std in percent.

    Args:
        aggregate: The dict returned by :func:`aggregate_seeds`.

    Returns:
        Markdown text with one row per stream: accuracy and macro-F1 as ``mean ± std`` (one
        decimal, "—" when not evaluated; the ``± std`` part is left out with a single seed),
        the number of seeds and the per-seed accuracies (``a / b / ...``); then the per-seed
        McNemar p-values, the fusion rule chosen in each seed (when recorded) and a table of
        the paired tests pooled over seeds (when given).

    Example:
        >>> runs = [build_results("d", 1, 1, 1, s, {"video": a}, {}, None)
        ...         for s, a in [(0, 0.8), (1, 0.9)]]
        >>> "| video | 85.0 ± 7.1 | — | 2 |" in aggregate_markdown(aggregate_seeds(runs))
        True
    """

    def cell(entry: Mapping[str, Any]) -> str:
        if entry.get("mean") is None:
            return _DASH
        text = f"{100.0 * entry['mean']:.1f}"
        if entry.get("std") is not None:
            text += f" ± {100.0 * entry['std']:.1f}"
        return text

    lines = [
        f"# Results: {aggregate['dataset']} over {aggregate['n_runs']} seed(s)",
        "",
        "Seeds: "
        + ", ".join(str(s) for s in aggregate["seeds"])
        + ". Mean ± sample standard deviation.",
        "",
        "| Stream | Accuracy (%) | Macro-F1 (%) | Seeds | Accuracy per seed (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for stream in stream_order([*aggregate["accuracy"], *aggregate["macro_f1"]]):
        acc = aggregate["accuracy"].get(stream) or {}
        f1 = aggregate["macro_f1"].get(stream) or {}
        n = max(acc.get("n", 0), f1.get("n", 0))
        values = [_fraction_or_none(v) for v in acc.get("values") or []]
        per_seed = (
            " / ".join(_percent(v) for v in values) if any(v is not None for v in values) else _DASH
        )
        lines.append(f"| {stream} | {cell(acc)} | {cell(f1)} | {n} | {per_seed} |")

    def evaluated(streams: Sequence[str]) -> bool:
        return any((aggregate["accuracy"].get(s) or {}).get("mean") is not None for s in streams)

    if evaluated((*_BASELINES, *_OTHER_BASELINES)):
        lines += ["", _BASELINE_NOTE]
    if evaluated(_CONTROLS):
        lines += ["", _CONTROL_NOTE]
    p_values = ", ".join(_format_p(p) for p in aggregate.get("mcnemar_p", []))
    lines += ["", f"McNemar exact p per seed: {p_values or _DASH}"]
    rules = aggregate.get("best_fusion_per_seed") or []
    if any(rule is not None for rule in rules):
        chosen = ", ".join(
            f"{seed}: {_inline(rule)}"
            for seed, rule in zip(aggregate["seeds"], rules, strict=False)
        )
        lines += ["", f"Fusion rule chosen per seed (fusion_best): {chosen}"]
    tests = aggregate.get("paired_tests") or []
    if tests:
        lines += [
            "",
            "## Paired tests pooled over seeds",
            "",
            "Discordant counts summed over the seeds' test predictions; exact McNemar test on "
            "the sums.",
            "",
        ]
        lines += _mcnemar_table(tests)
    return "\n".join(lines) + "\n"


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """A training history CSV (``history.csv``: one row per epoch, ``epoch`` first), with numbers.

    Raises:
        FileNotFoundError: ``path`` does not exist (one line naming it).
        ValueError: ``path`` is empty, has no epoch rows or cannot be parsed (one line naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"training history {path} does not exist; pass the history.csv a training run wrote"
        )
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"training history {path} is empty; the fit wrote no epochs (re-run it)"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ValueError(f"training history {path} is not a CSV file ({first})") from None
    if df.empty:
        raise ValueError(
            f"training history {path} has a header but no epoch rows; the fit wrote no epochs"
        )
    return df.apply(pd.to_numeric, errors="coerce")


def _curve_columns(columns: Sequence[str], suffix: str) -> list[tuple[str, str | None]]:
    """(training column, validation column or None) of every metric ending in ``suffix``; the
    overall ``loss`` alone when there is one (per-output losses would crowd the panel)."""
    if suffix == "loss" and ("loss" in columns or "val_loss" in columns):
        names = ["loss"]
    else:
        names = sorted(
            {c.removeprefix("val_") for c in columns if c.endswith(suffix) and c != "epoch"}
        )
    return [
        (name if name in columns else "", f"val_{name}" if f"val_{name}" in columns else None)
        for name in names
    ]


def plot_training_curves(
    history_csv_paths: str | os.PathLike | Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    *,
    selected: Sequence[int | None] | None = None,
    title: str | None = None,
) -> Path:
    """Saves loss and accuracy per epoch of one or more training histories as a PNG.

    One row of panels per history file (``history.csv``, ``history_control.csv``, ...): the loss
    (``loss``, ``val_loss``) on the left and every ``*accuracy`` column on the right, training
    solid and validation dashed; the right panel is left out when no file logs an accuracy
    (contrastive pretraining). A dotted line marks each file's selected epoch. Agg canvas, atomic
    write.

    Args:
        history_csv_paths: A history CSV or a sequence of them (one row per epoch, ``epoch``
            column counted from 1, as :func:`vsfusion.stages.common.fit_with_selection` writes).
        out_png: Output ``.png`` path (folders are created).
        selected: The selected epoch of each file, aligned with ``history_csv_paths``; None
            (or a None entry) marks nothing, e.g. for a fit that keeps its last epoch.
        title: Figure title.

    Returns:
        The written path.

    Raises:
        FileNotFoundError: A history file does not exist (one line naming it).
        ValueError: A history file is empty, unparseable or logs neither loss nor accuracy, or
            ``selected`` does not match the files.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "history.csv"), "w").write(
        ...     "epoch,loss,accuracy,val_loss,val_accuracy\\n1,1.0,0.4,1.1,0.3\\n2,0.6,0.7,0.9,0.5\\n")
        >>> plot_training_curves(os.path.join(d, "history.csv"), os.path.join(d, "curves.png"),
        ...                      selected=[2]).name
        'curves.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if isinstance(history_csv_paths, (str, os.PathLike)):
        history_csv_paths = [history_csv_paths]
    paths = [Path(p) for p in history_csv_paths]
    if not paths:
        raise ValueError("plot_training_curves needs at least one history CSV")
    marks = list(selected) if selected is not None else [None] * len(paths)
    if len(marks) != len(paths):
        raise ValueError(
            f"selected has {len(marks)} epochs for {len(paths)} history files; give one per file"
        )
    frames = [read_history(p) for p in paths]
    panels = []
    for path, df in zip(paths, frames, strict=True):
        columns = [str(c) for c in df.columns]
        loss, accuracy = _curve_columns(columns, "loss"), _curve_columns(columns, "accuracy")
        if not loss and not accuracy:
            raise ValueError(
                f"training history {path} logs neither loss nor accuracy (columns {columns})"
            )
        panels.append((loss, accuracy))
    ncols = 2 if any(acc for _, acc in panels) else 1

    fig = Figure(figsize=(5.0 * ncols, 3.2 * len(paths) + (0.4 if title else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(paths), ncols, squeeze=False)
    for row, (path, df, (loss, accuracy), mark) in enumerate(
        zip(paths, frames, panels, marks, strict=True)
    ):
        epochs = df["epoch"] if "epoch" in df else pd.Series(np.arange(1, len(df) + 1))
        stem = path.stem.removeprefix("history").strip("_").replace("_", " ")
        label = stem or "training"
        for col, (what, pairs) in enumerate((("loss", loss), ("accuracy", accuracy))[:ncols]):
            ax = axes[row, col]
            for i, (train_col, val_col) in enumerate(pairs):
                colour = f"C{i % 10}"
                name = train_col or (val_col or "").removeprefix("val_")
                if train_col:
                    ax.plot(
                        epochs, df[train_col], "-o", color=colour, ms=3, label=f"{name} (train)"
                    )
                if val_col:
                    ax.plot(epochs, df[val_col], "--s", color=colour, ms=3, label=f"{name} (val)")
            if mark is not None:
                ax.axvline(mark, color="0.35", ls=":", lw=1.5, label=f"selected epoch {mark}")
            if not pairs:
                ax.text(
                    0.5, 0.5, f"no {what} logged", ha="center", va="center", transform=ax.transAxes
                )
            ax.set_title(f"{label}: {what}", fontsize=10)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = _atomic_write(out_png, lambda handle: fig.savefig(handle, format="png"))
    logger.info("wrote training curves %s", out)
    return out
