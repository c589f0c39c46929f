"""Result files of an evaluation run: ``results.json``, ``results.md``, plots and seed tables.

One run (one dataset, one seed) is described by the dict of :func:`build_results`::

    {"dataset": str, "n_train": int, "n_val": int, "n_test": int, "seed": int,
     "accuracy": {stream: float | None for stream in STREAMS},
     "macro_f1": {stream: float | None for stream in STREAMS},
     "mcnemar_p": float | None,
     "extra": {...}}            # only when given: top-5, chosen fusion weight, timings, ...

Accuracies and F1 scores are fractions in ``[0, 1]``; a stream that was not evaluated is
``None`` (``null`` in JSON, "—" in Markdown). :func:`write_results` writes the JSON and the
Markdown table atomically; :func:`aggregate_seeds` and :func:`aggregate_markdown` summarise
several seeds as mean ± standard deviation.

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

__all__ = [
    "STREAMS",
    "aggregate_markdown",
    "aggregate_seeds",
    "build_results",
    "plot_confusion",
    "results_markdown",
    "write_per_class_report",
    "write_results",
]

logger = logging.getLogger(__name__)

#: Every stream a run may report, in table order. The ``baseline_*`` rows (classical
#: scikit-learn models of the baselines stage, the floor a deep stream must clear) come last.
STREAMS: tuple[str, ...] = (
    "video",
    "sensor",
    "generated_sensor",
    "fusion_sum",
    "fusion_weighted",
    "fusion_product",
    "fusion_max",
    "fusion_learned",
    "oracle_fusion",
    "baseline_sensor",
    "baseline_video",
)

_METRICS = ("accuracy", "macro_f1")
_BASELINES = ("baseline_sensor", "baseline_video")
_BASELINE_NOTE = (
    "baseline_* rows: scikit-learn models on hand-made features (sensor summary statistics; "
    "depth motion maps or RGB motion images), the floor a deep stream must clear."
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


def _stream_scores(scores: Mapping[str, Any] | None, metric: str) -> dict[str, float | None]:
    """Maps every stream to its score, rejecting unknown stream names."""
    scores = dict(scores or {})
    unknown = sorted(set(scores) - set(STREAMS))
    if unknown:
        raise ValueError(
            f"unknown stream name(s) in {metric}: {unknown}; expected some of {list(STREAMS)}"
        )
    return {s: _score(scores.get(s), f"{metric}[{s!r}]") for s in STREAMS}


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
        accuracy: Top-1 accuracy per stream, fractions in ``[0, 1]``; streams left out are
            stored as ``None``.
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
        ValueError: On an unknown stream name, a score outside ``[0, 1]`` (e.g. a
            percentage), a negative split size, or an ``extra`` that cannot be stored in JSON.

    Example:
        >>> r = build_results("demo", 10, 2, 5, 1, {"video": 0.8}, {"video": 0.75}, 0.5)
        >>> sorted(r)
        ['accuracy', 'dataset', 'macro_f1', 'mcnemar_p', 'n_test', 'n_train', 'n_val', 'seed']
    """
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty string, got {dataset!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    results: dict[str, Any] = {
        "dataset": dataset,
        "n_train": _count(n_train, "n_train"),
        "n_val": _count(n_val, "n_val"),
        "n_test": _count(n_test, "n_test"),
        "seed": int(seed),
        "accuracy": _stream_scores(accuracy, "accuracy"),
        "macro_f1": _stream_scores(macro_f1, "macro_f1"),
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
        percent with one decimal ("—" for streams not evaluated), the McNemar p-value line and,
        when present, the scalar entries of ``extra``.

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
    for stream in STREAMS:
        lines.append(
            f"| {stream} | {_percent(accuracy.get(stream))} | {_percent(f1.get(stream))} |"
        )
    extra = results.get("extra") or {}
    if any(accuracy.get(s) is not None for s in _BASELINES):
        lines += ["", _BASELINE_NOTE]
    pair = extra.get("mcnemar_pair")
    compared = f" ({pair[0]} vs {pair[1]})" if isinstance(pair, list) and len(pair) == 2 else ""
    lines += ["", f"McNemar exact test{compared}: p = {_format_p(results.get('mcnemar_p'))}"]
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
    details = {k: v for k, v in extra.items() if k not in ("mcnemar_pair", "baselines")}
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


def aggregate_seeds(results_list: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summarises runs of one dataset over several seeds as mean and standard deviation.

    For each stream and metric the mean and the sample standard deviation (``ddof=1``; ``None``
    with fewer than two values) are taken over the seeds where the stream was evaluated.

    Args:
        results_list: Results dicts from :func:`build_results` (or ``results.json`` files
            read back), all for the same dataset.

    Returns:
        ``{"dataset": str, "seeds": [int, ...], "n_runs": int,
        "accuracy": {stream: {"mean": float | None, "std": float | None, "n": int}},
        "macro_f1": {... same ...}, "mcnemar_p": [float | None, ...]}`` (one p-value per run).

    Raises:
        ValueError: On an empty list or runs from different datasets.

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

    aggregate: dict[str, Any] = {"dataset": datasets[0], "seeds": seeds, "n_runs": len(runs)}
    for metric in _METRICS:
        table = {}
        for stream in STREAMS:
            values = [r[metric].get(stream) for r in runs]
            present = np.array([v for v in values if v is not None], dtype=np.float64)
            mean = float(present.mean()) if present.size else None
            std = float(present.std(ddof=1)) if present.size >= 2 else None
            table[stream] = {"mean": mean, "std": std, "n": int(present.size)}
        aggregate[metric] = table
    aggregate["mcnemar_p"] = [r.get("mcnemar_p") for r in runs]
    return aggregate


def aggregate_markdown(aggregate: Mapping[str, Any]) -> str:
    """Renders :func:`aggregate_seeds` output as a Markdown table of mean ± std in percent.

    Args:
        aggregate: The dict returned by :func:`aggregate_seeds`.

    Returns:
        Markdown text with one row per stream: accuracy and macro-F1 as ``mean ± std`` (one
        decimal, "—" when not evaluated; the ``± std`` part is left out with a single seed),
        the number of seeds, and the per-seed McNemar p-values.

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
        "| Stream | Accuracy (%) | Macro-F1 (%) | Seeds |",
        "|---|---:|---:|---:|",
    ]
    for stream in STREAMS:
        acc = aggregate["accuracy"][stream]
        f1 = aggregate["macro_f1"][stream]
        n = max(acc.get("n", 0), f1.get("n", 0))
        lines.append(f"| {stream} | {cell(acc)} | {cell(f1)} | {n} |")
    if any(aggregate["accuracy"][s].get("mean") is not None for s in _BASELINES):
        lines += ["", _BASELINE_NOTE]
    p_values = ", ".join(_format_p(p) for p in aggregate.get("mcnemar_p", []))
    lines += ["", f"McNemar exact p per seed: {p_values or _DASH}"]
    return "\n".join(lines) + "\n"
