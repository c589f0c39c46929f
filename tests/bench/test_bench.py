"""``make bench``: one small run of the benchmark script writes consistent JSON and Markdown."""

import json
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
    # oneDNN off is skipped: TensorFlow's fallback Conv3D takes ~30 s per I3D step at 32x32 px
    assert bench.main([*argv, "--skip", "prep,onednn", "--imitate", "avx2"]) == 0
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
