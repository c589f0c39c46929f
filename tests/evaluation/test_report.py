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
    plot_embedding_tsne,
    plot_per_class_delta,
    plot_training_curves,
    results_markdown,
    stream_order,
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
        "fusion_best",
        "video_head_control",
        "video_head_control_fusion",
        "video_ensemble",
        "video_ensemble_fusion",
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
        ({"accuracy": {"": 0.5}}, "bad stream name"),
        ({"macro_f1": {"a|b": 0.5}}, "bad stream name"),
        ({"accuracy": {"a\nb": 0.5}}, "line"),
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


HISTORY = (
    "epoch,accuracy,loss,val_accuracy,val_loss\n"
    "1,0.40,1.10,0.30,1.20\n2,0.60,0.80,0.55,0.95\n3,0.75,0.60,0.50,1.00\n"
)


def test_plot_training_curves_plots_a_history_csv_and_marks_the_selected_epoch(tmp_path):
    import matplotlib.image

    history = tmp_path / "history.csv"
    history.write_text(HISTORY)
    path = plot_training_curves(history, tmp_path / "curves.png", selected=[2], title="sensor")
    assert path.read_bytes()[:8] == PNG_MAGIC
    marked = matplotlib.image.imread(path)
    assert marked.ndim == 3 and marked.shape[1] > marked.shape[0]  # loss beside accuracy
    plain = plot_training_curves([history], tmp_path / "plain.png", title="sensor")
    plain = matplotlib.image.imread(plain)
    assert plain.shape == marked.shape and not np.array_equal(plain, marked)
    assert _no_tmp_files(tmp_path)


def test_plot_training_curves_takes_several_histories_and_loss_only_ones(tmp_path):
    import matplotlib.image

    (tmp_path / "history.csv").write_text(HISTORY)
    (tmp_path / "history_control.csv").write_text(
        "epoch,probs_accuracy,loss,val_probs_accuracy,val_loss\n1,0.5,1.0,0.4,1.1\n"
    )
    (tmp_path / "pretrain.csv").write_text("epoch,loss,seconds\n1,2.5,3.0\n2,2.1,2.9\n")
    paths = [tmp_path / "history.csv", tmp_path / "history_control.csv"]
    two = matplotlib.image.imread(
        plot_training_curves(paths, tmp_path / "two.png", selected=[3, 1])
    )
    one = matplotlib.image.imread(plot_training_curves(paths[:1], tmp_path / "one.png"))
    assert two.shape[0] > one.shape[0] and two.shape[1] == one.shape[1]  # a row per file
    loss_only = plot_training_curves(tmp_path / "pretrain.csv", tmp_path / "pretrain.png")
    assert matplotlib.image.imread(loss_only).shape[1] < one.shape[1]  # no accuracy panel
    with pytest.raises(ValueError, match="one per file"):
        plot_training_curves(paths, tmp_path / "bad.png", selected=[1])


@pytest.mark.parametrize("content", [None, "", "epoch,loss,accuracy\n", "epoch,seconds\n1,2\n"])
def test_plot_training_curves_names_a_missing_or_empty_history(tmp_path, content):
    history = tmp_path / "history_control.csv"
    if content is not None:
        history.write_text(content)
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        plot_training_curves(history, tmp_path / "curves.png")
    message = str(info.value)
    assert str(history) in message and "\n" not in message
    assert not (tmp_path / "curves.png").exists()


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
    assert agg["accuracy"]["fusion_weighted"] == {
        "mean": 0.9,
        "std": None,
        "n": 1,
        "values": [0.9, None],
    }
    assert agg["accuracy"]["oracle_fusion"] == {
        "mean": None,
        "std": None,
        "n": 0,
        "values": [None, None],
    }
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


# --------------------------------------------------------------------------------------------
# Fusion-stage rows and sections, figures, seeds with paired tests
# --------------------------------------------------------------------------------------------

_FUSION_ACCURACY = {
    "video": 0.5,
    "generated_sensor": 0.4,
    "fusion_best": 0.625,
    "video_head_control": 0.55,
    "video_head_control_fusion": 0.5,
    "video_ensemble": 0.45,
    "video_ensemble_fusion": 0.575,
    "sensor": 0.7,
    "oracle_fusion": 0.8,
}
_SELECTION_SUMMARY = {
    "best": "weighted",
    "scores": {"sum": 0.8, "weighted": 0.85},
    "weight": 0.65,
    "mlp_epochs": None,
    "pool": "out-of-fold + validation",
    "groups": {"s1": 9, "s2": 9},
}


def _fusion_results(seed=0, rule="weighted (w = 0.65)", **accuracy):
    """A run shaped like the fusion stage's results (extra keys as vsfusion.stages.fusion writes)."""
    return build_results(
        "demo",
        18,
        9,
        8,
        seed,
        accuracy={**_FUSION_ACCURACY, **accuracy},
        macro_f1={"video": 0.4, "fusion_best": 0.6},
        mcnemar_p=0.625,
        extra={
            "best_fusion": "fusion_weighted",
            "best_fusion_rule": rule,
            "control": "video_head_control",
            "mcnemar_pair": ["fusion_best", "video"],
            "mcnemar_tests": [
                {"pair": ["fusion_best", "video"], "b": 3, "c": 1, "n": 8, "p_value": 0.625},
                {
                    "pair": ["fusion_best", "video_head_control_fusion"],
                    "b": 2,
                    "c": 0,
                    "n": 8,
                    "p_value": 0.5,
                },
            ],
            "missing_modality": {
                "video only": {"stream": "video", "rule": None},
                "sensor only": {"stream": "sensor", "rule": None},
                "video + real sensor": {"stream": "oracle_fusion", "rule": "sum"},
                "video + generated sensor": {"stream": "fusion_best", "rule": rule},
            },
            "selection": {
                "pool": "out-of-fold + validation",
                "pool_groups": {"s1": 9, "s2": 9},
                "folds": [{"run": "/runs/f1", "held_out": ["s1"], "n": 9}],
                "generated": _SELECTION_SUMMARY,
            },
            "figures": {"Per-class change": "per_class_delta.png", "t-SNE": "tsne.png"},
        },
    )


def _section(md, heading):
    """The lines of a ``## heading`` section (up to the next heading)."""
    lines = md.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def test_build_results_accepts_every_new_stream():
    accuracy = {stream: 0.5 for stream in STREAMS}
    results = build_results("demo", 1, 1, 1, 0, accuracy, accuracy, None)
    assert results["accuracy"] == accuracy
    md = results_markdown(results)
    for stream in STREAMS:
        assert f"| {stream} | 50.0 | 50.0 |" in md


def test_results_markdown_renders_fusion_sections_and_keeps_them_out_of_details():
    md = results_markdown(_fusion_results())
    assert "| fusion_best | 62.5 | 60.0 |" in md
    assert "| video_ensemble_fusion | 57.5 | — |" in md
    assert "Control rows" in md and "video_head_control" in md

    tests = _section(md, "## Paired tests (exact McNemar on the test split)")
    assert "| comparison | only a right | only b right | p (exact McNemar) |" in tests
    assert "| a = fusion_best vs b = video | 3 | 1 | 0.6250 |" in tests
    assert "| a = fusion_best vs b = video_head_control_fusion | 2 | 0 | 0.5000 |" in tests

    matrix = _section(md, "## Missing-modality matrix")
    assert "| test-time input | row | accuracy | macro F1 | rule chosen |" in matrix
    assert "| video only | video | 50.0 | 40.0 | — |" in matrix
    assert "| sensor only | sensor | 70.0 | — | — |" in matrix
    assert "| video + real sensor | oracle_fusion | 80.0 | — | sum |" in matrix
    assert (
        "| video + generated sensor | fusion_best | 62.5 | 60.0 | weighted (w = 0.65) |" in matrix
    )

    selection = _section(md, "## Selection")
    assert "- pool: out-of-fold + validation" in selection
    assert "- pool_groups: s1: 9, s2: 9" in selection
    assert "  - best: weighted" in selection
    assert "  - scores: sum: 0.8, weighted: 0.85" in selection
    assert any("held_out: s1" in line for line in selection)

    assert _section(md, "## Figures") == [
        "",
        "![Per-class change](per_class_delta.png)",
        "",
        "![t-SNE](tsne.png)",
        "",
    ]

    details = "\n".join(_section(md, "## Details"))
    assert "- best_fusion_rule: weighted (w = 0.65)" in details
    for key in ("mcnemar_tests", "missing_modality", "selection", "figures", "mcnemar_pair"):
        assert f"- {key}:" not in details
    assert md.count("per_class_delta.png") == 1


def test_results_markdown_accepts_a_list_shaped_missing_modality_and_odd_selection():
    matrix = [
        {"input": "video only", "row": "video", "accuracy": 0.5, "macro_f1": None, "rule": None},
        {"input": "video + generated sensor", "row": "fusion_best", "accuracy": 0.75,
         "macro_f1": 0.7, "rule": "sum"},
    ]  # fmt: skip
    selection = {"pool": "validation", "generated": "sum", "deep": {"a": {"b": [1, 2.5]}}}
    extra = {"missing_modality": matrix, "selection": selection}
    md = results_markdown(build_results("demo", 1, 1, 1, 0, {}, {}, None, extra=extra))
    assert "| video only | video | 50.0 | — | — |" in md
    assert "| video + generated sensor | fusion_best | 75.0 | 70.0 | sum |" in md
    selection_lines = _section(md, "## Selection")
    assert "- generated: sum" in selection_lines
    assert selection_lines[-3:] == ["- deep:", "  - a:", "    - b: 1, 2.5"]
    assert "## Details" not in md


def test_results_markdown_has_no_control_note_without_control_rows():
    md = results_markdown(_results())
    assert "Control rows" not in md
    assert "## Missing-modality matrix" not in md and "## Figures" not in md


def _tiny_embeddings(n=6, d=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    real = rng.normal(size=(n, d)) + labels[:, None]
    generated = real + rng.normal(scale=0.1, size=(n, d))
    return real, generated, labels


def test_plot_embedding_tsne_writes_png_for_tiny_input(tmp_path):
    import matplotlib.image

    real, generated, labels = _tiny_embeddings()
    path = plot_embedding_tsne(
        real, generated, labels, ["walk", "run", "sit"], tmp_path / "fig" / "tsne.png", seed=1
    )
    assert path == tmp_path / "fig" / "tsne.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.image.imread(path).shape[0] > 50
    assert _no_tmp_files(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"generated": np.zeros((5, 5))}, "same"),
        ({"generated": np.zeros((6, 4))}, "same"),
        ({"real": np.zeros(6)}, "2-D"),
        ({"labels": np.zeros(5, dtype=int)}, "labels"),
        ({"labels": np.full(6, 3)}, "class indices"),
        ({"real": np.full((6, 5), np.nan)}, "NaN"),
    ],
)
def test_plot_embedding_tsne_rejects_bad_input(tmp_path, change, message):
    real, generated, labels = _tiny_embeddings()
    args = {"real": real, "generated": generated, "labels": labels, **change}
    with pytest.raises(ValueError, match=message):
        plot_embedding_tsne(
            args["real"], args["generated"], args["labels"], ["a", "b", "c"], tmp_path / "t.png"
        )
    assert not (tmp_path / "t.png").exists()


def test_plot_per_class_delta_writes_png(tmp_path):
    y = np.array([0, 0, 1, 1, 2, 2])
    base = np.array([0, 1, 1, 1, 0, 0])
    new = np.array([0, 0, 1, 0, 2, 0])
    path = plot_per_class_delta(
        y, base, new, ["walk", "run", "sit", "absent"], tmp_path / "delta.png", base_name="video"
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert _no_tmp_files(tmp_path)
    with pytest.raises(ValueError, match="length"):
        plot_per_class_delta(y, base[:5], new, ["a", "b", "c"], tmp_path / "bad.png")


def test_aggregate_seeds_keeps_values_paired_tests_and_rules():
    runs = [
        _fusion_results(0, rule="weighted (w = 0.65)", fusion_best=0.6),
        _fusion_results(1, rule="sum", fusion_best=0.7),
        build_results("demo", 1, 1, 1, 2, {"video": 0.4}, {}, None),
    ]
    paired = [{"pair": ("fusion_best", "video"), "b": np.int64(9), "c": 3, "n": 24,
               "p_value": 0.146, "n_groups": 3, "per_group": []}]  # fmt: skip
    agg = aggregate_seeds(runs, paired_tests=paired)
    assert agg["accuracy"]["fusion_best"]["values"] == [0.6, 0.7, None]
    assert agg["accuracy"]["fusion_best"]["n"] == 2
    assert agg["macro_f1"]["video"]["values"] == [0.4, 0.4, None]
    assert agg["best_fusion_per_seed"] == ["weighted (w = 0.65)", "sum", None]
    assert agg["paired_tests"] == [
        {"pair": ["fusion_best", "video"], "b": 9, "c": 3, "n": 24, "p_value": 0.146,
         "n_groups": 3, "per_group": []}
    ]  # fmt: skip
    json.dumps(agg, allow_nan=False)
    assert aggregate_seeds(runs[:1])["paired_tests"] == []
    with pytest.raises(ValueError, match="paired_tests"):
        aggregate_seeds(runs, paired_tests=["fusion_best vs video"])


def test_aggregate_markdown_shows_per_seed_values_rules_and_pooled_tests():
    runs = [_fusion_results(0, fusion_best=0.6), _fusion_results(1, rule="sum", fusion_best=0.7)]
    paired = [{"pair": ["fusion_best", "video"], "b": 6, "c": 2, "n": 16, "p_value": 0.2891}]
    md = aggregate_markdown(aggregate_seeds(runs, paired_tests=paired))
    assert "| Stream | Accuracy (%) | Macro-F1 (%) | Seeds | Accuracy per seed (%) |" in md
    assert "| fusion_best | 65.0 ± 7.1 | 60.0 ± 0.0 | 2 | 60.0 / 70.0 |" in md
    assert "| baseline_video | — | — | 0 | — |" in md
    assert "Fusion rule chosen per seed (fusion_best): 0: weighted (w = 0.65), 1: sum" in md
    assert "Control rows" in md
    table = _section(md, "## Paired tests pooled over seeds")
    assert "| comparison | only a right | only b right | p (exact McNemar) |" in table
    assert "| a = fusion_best vs b = video | 6 | 2 | 0.2891 |" in table


def test_aggregate_markdown_without_rules_or_paired_tests():
    md = aggregate_markdown(aggregate_seeds([_results(0, video=0.8), _results(1, video=0.9)]))
    assert "| video | 85.0 ± 7.1 | 84.1 ± 0.0 | 2 | 80.0 / 90.0 |" in md
    assert "Fusion rule chosen" not in md
    assert "Paired tests" not in md


def _table_rows(md):
    """The stream names of the first table, in order."""
    lines = md.splitlines()
    start = lines.index("|---|---:|---:|") + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        rows.append(line.split(" | ")[0][2:])
    return rows


def test_other_streams_are_listed_after_the_known_deep_rows_before_the_baselines():
    accuracy = {"video": 0.8, "fusion_video_imu_depth": 0.9, "imu": 0.6, "baseline_video": 0.3}
    results = build_results("demo", 1, 1, 1, 0, accuracy, {"depth": 0.5}, None)
    deep = [s for s in STREAMS if not s.startswith("baseline_")]
    order = [*deep, "fusion_video_imu_depth", "imu", "depth", "baseline_sensor", "baseline_video"]
    assert list(results["accuracy"]) == order and list(results["macro_f1"]) == order
    assert results["accuracy"]["depth"] is None and results["macro_f1"]["depth"] == 0.5
    md = results_markdown(results)
    assert _table_rows(md) == order
    assert "| fusion_video_imu_depth | 90.0 | — |" in md
    assert stream_order(["imu"]) == [*deep, "imu", "baseline_sensor", "baseline_video"]


def test_a_two_stream_run_renders_exactly_the_known_rows():
    results = _fusion_results()
    assert list(results["accuracy"]) == list(STREAMS)
    md = results_markdown(json.loads(json.dumps(results)))  # as read back from results.json
    assert _table_rows(md) == list(STREAMS)
    assert md == results_markdown(results)


def test_aggregate_seeds_keeps_other_streams_of_any_run():
    runs = [
        build_results("d", 1, 1, 1, 0, {"video": 0.8, "fusion_3way": 0.9}, {}, None),
        build_results("d", 1, 1, 1, 1, {"video": 0.7}, {}, None),
    ]
    agg = aggregate_seeds(runs)
    assert agg["accuracy"]["fusion_3way"]["values"] == [0.9, None]
    assert agg["accuracy"]["fusion_3way"]["n"] == 1
    md = aggregate_markdown(agg)
    assert "| fusion_3way | 90.0 | — | 1 | 90.0 / — |" in md
    assert md.index("| oracle_fusion |") < md.index("| fusion_3way |") < md.index("| baseline_")


def test_results_markdown_renders_the_deploy_section():
    deploy = {
        "file": "deploy.keras",
        "inputs": {"video": [8, 32, 32, 3]},
        "rule": "weighted (w = 0.65)",
        "streams": ["video", "generated_sensor"],
    }
    md = results_markdown(build_results("demo", 1, 1, 1, 0, {}, {}, None, extra={"deploy": deploy}))
    section = _section(md, "## Deployable model")
    assert "- file: deploy.keras" in section
    assert "  - video: 8, 32, 32, 3" in section
    assert "## Details" not in md
