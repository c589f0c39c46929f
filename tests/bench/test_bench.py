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
    # the fused comparison has its own test below
    assert bench.main([*argv, "--skip", "prep,onednn,fused,distribute", "--imitate", "avx2"]) == 0
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
    assert bench.main([*argv, "--skip", "backbones,onednn,prep,loader,distribute"]) == 0
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


def test_distribute_bench_times_one_and_two_devices():
    """``bench/distribute.py``: both device counts of one model and backend, and their ratio."""
    from distribute import bench_distribute, markdown

    results = bench_distribute(backends=("jax",), models=("inception_time",), steps=2)
    runs = {r["devices"]: r for r in results["runs"]}
    assert set(runs) == {1, 2}
    assert all(r["step_s"] > 0 and r["steps_timed"] == 2 for r in runs.values())
    ratio = results["ratio_two_to_one"]["inception_time jax"]
    assert ratio == pytest.approx(runs[2]["step_s"] / runs[1]["step_s"], rel=0.05)
    assert "| inception_time | jax | 16 |" in "\n".join(markdown(results))
