"""Runtime settings: oneDNN on by default before TensorFlow loads, and the machine description."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsfusion.runtime import machine_info, simd_level

REPO = Path(__file__).resolve().parents[1]


def _probe(env_value: str | None) -> str:
    """In a fresh interpreter: import vsfusion, then TensorFlow; print what oneDNN does."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    code = (
        "import os, vsfusion, tensorflow\n"
        "from vsfusion.runtime import machine_info\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], machine_info()['onednn'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_importing_vsfusion_turns_onednn_on_and_respects_the_user():
    assert _probe(None) == "1 True"
    assert _probe("0") == "0 False"


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ({"sse4_2", "avx", "avx2", "fma"}, "AVX2"),
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX-512"),
        ({"avx2", "avx512f", "amx_tile"}, "AMX"),
        ({"sse4_2"}, "SSE"),
        (set(), "unknown"),
    ],
)
def test_simd_level(flags, level):
    assert simd_level(frozenset(flags)) == level


def test_machine_info_names_cpu_simd_threads_and_onednn(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    info = machine_info()
    assert info["cpu_model"] and info["cpus"] >= 1
    assert info["simd"] in ("AMX", "AVX-512", "AVX2", "AVX", "SSE", "unknown")
    assert info["onednn_max_isa"] == "AVX2"
    assert "onednn" in info


def test_skip_optional_imports_makes_their_import_fail_and_spares_the_backend(monkeypatch):
    from vsfusion.runtime import skip_optional_imports

    monkeypatch.setenv("KERAS_BACKEND", "vsfusion_absent_b")  # as if it were the backend
    skipped = skip_optional_imports(("vsfusion_absent_a", "vsfusion_absent_b", "os"))
    try:
        assert skipped == ["vsfusion_absent_a"]  # not the backend, nor what is loaded already
        with pytest.raises(ImportError):
            import vsfusion_absent_a  # noqa: F401
    finally:
        for name in skipped:
            sys.modules.pop(name, None)
