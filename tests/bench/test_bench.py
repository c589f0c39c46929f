"""``make bench``: one small run of the benchmark script writes consistent JSON and Markdown."""

import json
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import run as bench  # noqa: E402

pytestmark = pytest.mark.slow


def test_bench_reports_rates_and_efficiency(tmp_path):
    out = tmp_path / "results.json"
    argv = ["--out", str(out), "--backbones", "i3d,r2plus1d_18", "--sizes", "32", "--steps", "1"]
    # oneDNN off is skipped: TensorFlow's fallback Conv3D takes ~30 s per I3D step at 32x32 px;
    # the fused comparison and the export latencies have their own tests below
    skip = "prep,onednn,fused,export,predict,serve,distribute"
    assert bench.main([*argv, "--skip", skip, "--imitate", "avx2"]) == 0
    results = json.loads(out.read_text())
    assert results["imitate"] == "avx2" and results["machine"]["onednn_max_isa"] == "AVX2"
    assert results["machine"]["onednn"] is True
    matmul = results["matmul_gflops"]
    assert results["peak_gflops"] == max(matmul["numpy"], matmul["keras"]) > 0
    rows = {r["backbone"]: r for r in results["backbones"]}
    assert set(rows) == {"i3d", "r2plus1d_18"}
    for r in rows.values():
        assert r["clip"] == [16, 32, 32, 3]
        assert r["train_clips_per_s"] > 0 and r["forward_clips_per_s"] > 0
        # achieved rate = 2 x multiply-adds x 3 (forward + backward) / step time
        want = 6 * r["gmacs_per_clip"] * r["batch"] / r["train_step_s"]
        assert r["train_gflops_per_s"] == pytest.approx(want, rel=0.02)
        assert r["train_fraction_of_peak"] == pytest.approx(
            r["train_gflops_per_s"] / results["peak_gflops"], abs=2e-3
        )
    assert results["light_vs_i3d"]["r2plus1d_18 at 16x32x32"] == pytest.approx(
        rows["r2plus1d_18"]["train_clips_per_s"] / rows["i3d"]["train_clips_per_s"], abs=0.006
    )
    assert "onednn_speedup" not in results
    assert results["loader"][0]["loader_clips_per_s"] > 0
    md = out.with_suffix(".md").read_text()
    assert "imitating AVX2" in md and "| r2plus1d_18 | 16x32x32 |" in md


def test_bench_fused_model_against_one_video_pass(tmp_path):
    """``--skip`` everything but the fused comparison: three timings of one run, and the ratios."""
    out = tmp_path / "fused.json"
    argv = ["--out", str(out), "--sizes", "32", "--frames", "8", "--reps", "2"]
    assert (
        bench.main(
            [*argv, "--skip", "backbones,onednn,prep,loader,export,predict,serve,distribute"]
        )
        == 0
    )
    results = json.loads(out.read_text())
    assert results["backbones"] == [] and results["light_vs_i3d"] == {}
    assert not {"onednn_speedup", "preparation", "loader"} & set(results)
    [fused] = results["fused"]
    assert fused["backbone"] == "i3d" and fused["clip"] == [8, 32, 32, 3]
    assert fused["batch"] == 8 and fused["reps"] == 2
    models = ("video", "fused_shared", "fused_own")
    for name in models:
        times = fused["times_s"][name]
        assert len(times) == 2 and min(times) > 0
        assert fused["batch_s"][name] == pytest.approx(statistics.median(times), abs=2e-6)
        assert fused["clips_per_s"][name] == pytest.approx(8 / fused["batch_s"][name], rel=0.01)
    # both ratios come from this run's medians, the same calls as the video classifier's time
    assert set(fused["ratio_to_video"]) == {"fused_shared", "fused_own"}
    for name, ratio in fused["ratio_to_video"].items():
        assert ratio > 0
        assert ratio == pytest.approx(fused["batch_s"][name] / fused["batch_s"]["video"], abs=2e-3)
        assert fused["meets_target"][name] == (ratio <= fused["target"][name])
    assert fused["target"] == {"fused_shared": 1.2, "fused_own": 2.1}
    # a shared trunk adds only the two small heads; an own trunk doubles the trunk's compute
    gmacs = fused["gmacs_per_clip"]
    assert gmacs["video"] <= gmacs["fused_shared"] < 1.01 * gmacs["video"]
    assert gmacs["fused_own"] == pytest.approx(2 * gmacs["video"], rel=0.01)
    md = out.with_suffix(".md").read_text()
    assert "| fused, shared trunk | 8x32x32 |" in md and "| fused, own trunk | 8x32x32 |" in md
    assert "| backbone |" not in md


def test_bench_interleaves_the_timed_calls():
    """Every model is warmed up first; then each round calls all of them, the order rotating."""
    calls: list[str] = []
    times = bench._interleaved_times(
        {name: (lambda name=name: calls.append(name)) for name in "abc"}, reps=3, warmup=1
    )
    assert calls == list("abc" + "abc" + "bca" + "cab")
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_bench_rejects_an_unknown_skip(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--out", str(tmp_path / "r.json"), "--skip", "fusion"])


def test_bench_export_times_keras_onnx_and_litert_per_clip(tmp_path):
    """``--skip`` everything but the export latencies: one fused I3D model, three runtimes timed
    on the same clip, the exports within 1e-4 of Keras."""
    out = tmp_path / "export.json"
    argv = ["--out", str(out), "--sizes", "32", "--frames", "8", "--reps", "3"]
    skip = ["--skip", "backbones,onednn,fused,prep,loader,predict,serve,distribute"]
    skip += ["--export_backbones", "i3d"]
    assert bench.main([*argv, *skip]) == 0
    results = json.loads(out.read_text())
    [run] = results["export"]["runs"]
    assert run["backbone"] == "i3d" and run["clip"] == [8, 32, 32, 3] and run["reps"] == 3
    for name in ("keras", "onnx", "litert"):
        times = run["times_s"][name]
        assert len(times) == 3 and min(times) > 0
        assert run["clip_s"][name] == pytest.approx(statistics.median(times), abs=1e-5)
        assert run["speedup_vs_keras"][name] == pytest.approx(
            run["clip_s"]["keras"] / run["clip_s"][name], rel=0.02
        )
    for fmt in ("onnx", "litert"):
        assert run["max_abs_diff"][fmt] <= 1e-4 and run["size_mib"][fmt] > 1
    md = out.with_suffix(".md").read_text()
    assert "| i3d | 8x32x32 | ONNX Runtime |" in md and "| i3d | 8x32x32 | LiteRT |" in md


def test_bench_predict_times_the_whole_process_and_its_phases(tmp_path):
    """``bench/predict.py`` on a small model: every timing present, the target judged on it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_predict", REPO / "bench" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.bench_predict(frames=4, crop=32, reps=1, jax=False)
    process = result["process"]
    assert set(process) == {
        "python",
        "import_onnx_path",
        "import_tensorflow",
        "import_keras",
        "import_keras_lean",
        "predict_py",
        "predict_py_keras",
    }
    for entry in process.values():
        assert entry["median_s"] == entry["times_s"][0] > 0
    # with Keras the whole process includes the backend import; the ONNX path does without it
    assert process["predict_py_keras"]["median_s"] > process["import_keras"]["median_s"] * 0.5
    assert process["predict_py"]["median_s"] < process["predict_py_keras"]["median_s"]
    onnx, keras_ = result["in_process"]["onnx"], result["in_process"]["keras"]
    assert onnx["file"] == "export/deploy_onnx/model.onnx" and keras_["file"] == "deploy.keras"
    for phases in (onnx, keras_):
        assert phases["input_shape"] == [4, 32, 32, 3]
        assert phases["total_s"] >= phases["load_s"] > 0 and phases["warm_predict_s"] > 0
    assert keras_["compile_s"] > 0 and keras_["warm_compiled_predict_s"] > 0
    assert "compile_s" not in onnx
    assert result["max_abs_diff_onnx_keras"] <= 1e-4
    assert result["meets_target"] == (process["predict_py"]["median_s"] <= result["target_s"])
    assert "predict.py clip.mp4" in module.markdown(result)


def test_distribute_bench_times_one_and_two_devices():
    """``bench/distribute.py``: both device counts of one model and backend, and their ratio."""
    sys.path.insert(0, str(REPO))
    from bench import distribute

    results = distribute.bench_distribute(backends=("jax",), models=("inception_time",), steps=2)
    runs = {r["devices"]: r for r in results["runs"]}
    assert set(runs) == {1, 2}
    assert all(r["step_s"] > 0 and r["steps_timed"] == 2 for r in runs.values())
    ratio = results["ratio_two_to_one"]["inception_time jax"]
    assert ratio == pytest.approx(runs[2]["step_s"] / runs[1]["step_s"], rel=0.05)
    assert "| inception_time | jax | 16 |" in "\n".join(distribute.markdown(results))
