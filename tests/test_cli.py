"""The command-line layer: every user error is one ``error:`` line and exit code 2, with no
half-written run left behind; library code raises exceptions and never exits."""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import train_sensor  # noqa: E402
from vsfusion.cli import run_cli  # noqa: E402
from vsfusion.config import SensorConfig  # noqa: E402


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: "), err
    return err[0]


def test_a_bad_yaml_value_is_one_line_naming_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1e-4\nepoch: ten\n")
    ck = tmp_path / "ck"
    code = train_sensor.main(["--config", str(path), "--checkpoints", str(ck)])
    line = _one_error_line(capsys)
    assert code == 2
    assert str(path) in line and "option epoch: 'ten' is not a valid int" in line, line
    assert not ck.exists()


def test_a_missing_config_file_is_one_line(tmp_path, capsys):
    code = run_cli(SensorConfig, lambda cfg: None, ["--config", str(tmp_path / "nope.yaml")])
    assert code == 2 and "nope.yaml does not exist" in _one_error_line(capsys)


def _failing_stage(error: Exception):
    def stage(cfg):
        from vsfusion.stages.common import RunDir

        run = RunDir.create(cfg)
        assert run.path.name.endswith(".incomplete") and run.path.is_dir()
        raise error

    return stage


def test_a_stage_error_is_one_line_and_discards_the_run(tmp_path, capsys):
    from vsfusion.stages.common import StageError

    ck = tmp_path / "ck"
    argv = ["--checkpoints", str(ck), "--run_name", "r", "--verbose", "0"]
    error = StageError("weights w.h5 do not fit\nthe model; drop --pretrain")
    assert run_cli(SensorConfig, _failing_stage(error), argv) == 2
    line = _one_error_line(capsys)
    assert line == "error: weights w.h5 do not fit the model; drop --pretrain"
    stage_dir = ck / "demo" / "sensor"
    assert stage_dir.is_dir() and not any(stage_dir.iterdir())  # no .r.incomplete left


def test_a_plain_value_error_is_a_bug_and_keeps_its_traceback(tmp_path):
    from vsfusion.stages.common import RunDir

    argv = ["--checkpoints", str(tmp_path / "ck"), "--verbose", "0"]
    with pytest.raises(ValueError, match="a bug"):
        run_cli(SensorConfig, _failing_stage(ValueError("a bug")), argv)
    RunDir.discard_incomplete()


def _exits_outside_main_guard(tree: ast.Module) -> list[int]:
    """Lines that raise or call SystemExit / sys.exit / exit / quit / os._exit, outside an
    ``if __name__ == "__main__":`` block (the command line of ``python -m``)."""
    guarded: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            guarded |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "SystemExit":
            found.append(node.lineno)
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("sys.exit", "exit", "quit", "os._exit"):
                found.append(node.lineno)
    return sorted(set(found) - guarded)


def test_library_code_never_exits():
    offenders = []
    for path in sorted((REPO / "vsfusion").rglob("*.py")):
        lines = _exits_outside_main_guard(ast.parse(path.read_text(), filename=str(path)))
        offenders += [f"{path.relative_to(REPO)}:{n}" for n in lines]
    assert not offenders, (
        f"raise exceptions, not SystemExit (the CLI turns them into messages): {offenders}"
    )


def test_the_exit_check_finds_an_exit():
    code = "import sys\ndef f():\n    raise SystemExit(1)\ndef g():\n    sys.exit(2)\n"
    code += "if __name__ == '__main__':\n    sys.exit(g())\n"
    assert _exits_outside_main_guard(ast.parse(code)) == [3, 5]


def test_a_fresh_process_prints_nothing_but_the_error_line(tmp_path):
    """TensorFlow 2.21 prints oneDNN/CPU notices at import whatever TF_CPP_MIN_LOG_LEVEL says;
    a user's error must not be buried under them (stderr is exactly one line)."""
    import os
    import subprocess

    path = tmp_path / "run.yaml"
    path.write_text("epoch: ten\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_sensor.py"), "--config", str(path), "--dataset", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {path}: option epoch: 'ten' is not a valid int; fix the value in the file"
    ], proc.stderr
