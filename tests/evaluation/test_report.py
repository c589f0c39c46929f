"""Tests for vsfusion.evaluation.report: result files, Markdown tables, plots, seed aggregates."""

import json

import numpy as np
import pandas as pd
import pytest

from vsfusion.evaluation.report import (
    STREAMS,
    _atomic_write,
    aggregate_markdown,
    aggregate_seeds,
    build_results,
    plot_confusion,
    results_markdown,
    write_per_class_report,
    write_results,
)

REQUIRED = {"dataset", "n_train", "n_val", "n_test", "seed", "accuracy", "macro_f1", "mcnemar_p"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _results(seed=0, video=0.853, fusion=0.9, **kwargs):
    return build_results(
        "utd_mhad",
        400,
        80,
        381,
        seed,
        accuracy={"video": video, "fusion_weighted": fusion, "sensor": 0.7},
        macro_f1={"video": 0.841, "fusion_weighted": np.float32(0.875)},
        mcnemar_p=0.0386,
        **kwargs,
    )


def _no_tmp_files(folder):
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_streams():
    assert STREAMS == (
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


def test_build_results_has_exactly_the_required_keys():
    results = _results()
    assert set(results) == REQUIRED
    assert set(results["accuracy"]) == set(STREAMS)
    assert set(results["macro_f1"]) == set(STREAMS)
    assert results["accuracy"]["video"] == 0.853
    assert results["accuracy"]["oracle_fusion"] is None
    assert type(results["macro_f1"]["fusion_weighted"]) is float


def test_build_results_extra_is_optional_and_plain():
    results = _results(
        extra={"fusion_weight": np.float64(0.65), "top5": {"video": np.float32(1.0)}}
    )
    assert set(results) == REQUIRED | {"extra"}
    assert type(results["extra"]["fusion_weight"]) is float
    assert results["extra"]["top5"] == {"video": 1.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accuracy": {"videoo": 0.5}}, "unknown stream"),
        ({"macro_f1": {"fusion": 0.5}}, "unknown stream"),
        ({"accuracy": {"video": 85.3}}, "percentage"),
        ({"accuracy": {"video": float("nan")}}, r"\[0, 1\]"),
        ({"mcnemar_p": 1.5}, "mcnemar_p"),
        ({"n_test": -1}, "n_test"),
        ({"extra": {"model": object()}}, "JSON"),
    ],
)
def test_build_results_rejects_bad_values(kwargs, message):
    args = {"accuracy": {}, "macro_f1": {}, "mcnemar_p": None}
    args.update(kwargs)
    extra = args.pop("extra", None)
    n_test = args.pop("n_test", 10)
    with pytest.raises(ValueError, match=message):
        build_results("demo", 10, 2, n_test, 0, extra=extra, **args)


def test_write_results_json_and_markdown(tmp_path):
    results = _results(extra={"fusion_weight": 0.65, "mcnemar_pair": ["fusion_weighted", "video"]})
    json_path, md_path = write_results(tmp_path / "run", results)
    assert json_path == tmp_path / "run" / "results.json"
    loaded = json.loads(json_path.read_text())
    assert set(loaded) == REQUIRED | {"extra"}
    assert loaded == results
    raw = json_path.read_text()
    assert '"oracle_fusion": null' in raw
    assert "NaN" not in raw
    md = md_path.read_text()
    assert md == results_markdown(results)
    assert _no_tmp_files(tmp_path)


def test_results_markdown_rows():
    md = results_markdown(_results())
    assert "utd_mhad" in md
    assert "Seed 0" in md
    assert "train 400, val 80, test 381" in md
    assert "| video | 85.3 | 84.1 |" in md
    assert "| sensor | 70.0 | — |" in md
    assert "| fusion_weighted | 90.0 | 87.5 |" in md
    assert "| oracle_fusion | — | — |" in md
    for stream in STREAMS:
        assert f"| {stream} |" in md
    assert "McNemar" in md and "p = 0.0386" in md


def test_results_markdown_handles_missing_p_and_extras():
    results = build_results("demo", 1, 1, 1, 3, {}, {}, None, extra={"best_fusion": "fusion_sum"})
    md = results_markdown(results)
    assert "p = —" in md
    assert "- best_fusion: fusion_sum" in md


def test_plot_confusion_writes_valid_png(tmp_path):
    import matplotlib.image

    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    path = plot_confusion(cm, ["walk", "run", "sit"], tmp_path / "plots" / "cm.png", title="video")
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50
    assert _no_tmp_files(tmp_path)
    with pytest.raises(ValueError, match="square"):
        plot_confusion(cm, ["walk", "run"], tmp_path / "bad.png")


def test_write_per_class_report_csv_and_md(tmp_path):
    df = pd.DataFrame(
        {"precision": [1.0, 0.5], "recall": [0.5, 1.0], "f1": [2 / 3, 2 / 3], "support": [2, 1]},
        index=pd.Index(["walk", "run"], name="class"),
    )
    csv_path = write_per_class_report(df, tmp_path / "per_class.csv")
    back = pd.read_csv(csv_path, index_col="class")
    pd.testing.assert_frame_equal(back, df, check_exact=False, atol=1e-6)
    md = write_per_class_report(df, tmp_path / "per_class.md").read_text()
    assert "| walk | 100.0 | 50.0 | 66.7 | 2 |" in md
    assert _no_tmp_files(tmp_path)


def test_atomic_write_failure_leaves_nothing(tmp_path):
    def explode(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _atomic_write(tmp_path / "x.json", explode)
    assert list(tmp_path.iterdir()) == []


def test_aggregate_seeds_mean_and_std():
    runs = [_results(seed=0, video=0.8, fusion=0.9), _results(seed=1, video=0.9, fusion=None)]
    agg = aggregate_seeds(runs)
    assert agg["dataset"] == "utd_mhad"
    assert agg["seeds"] == [0, 1]
    assert agg["n_runs"] == 2
    video = agg["accuracy"]["video"]
    assert video["mean"] == pytest.approx(0.85)
    assert video["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert video["n"] == 2
    assert agg["accuracy"]["fusion_weighted"] == {"mean": 0.9, "std": None, "n": 1}
    assert agg["accuracy"]["oracle_fusion"] == {"mean": None, "std": None, "n": 0}
    assert agg["mcnemar_p"] == [0.0386, 0.0386]
    json.dumps(agg, allow_nan=False)


def test_aggregate_markdown():
    md = aggregate_markdown(aggregate_seeds([_results(0, video=0.8), _results(1, video=0.9)]))
    assert "| video | 85.0 ± 7.1 | 84.1 ± 0.0 | 2 |" in md
    assert "| oracle_fusion | — | — | 0 |" in md
    assert "Seeds: 0, 1" in md


def test_aggregate_seeds_rejects_mixed_datasets_and_empty():
    other = build_results("berkeley_mhad", 1, 1, 1, 0, {}, {}, None)
    with pytest.raises(ValueError, match="different datasets"):
        aggregate_seeds([_results(), other])
    with pytest.raises(ValueError, match="at least one"):
        aggregate_seeds([])
