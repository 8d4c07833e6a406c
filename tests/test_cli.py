"""run_job: a failure is one line on stderr, exit code 2, the trace in a log file."""

from __future__ import annotations

from pathlib import Path

import pytest

from profilehouse.cli import run_job
from profilehouse.errors import ConfigError, SchemaError


def _fails_with(exc: Exception):
    def main(_argv: list[str] | None = None) -> int:
        raise exc

    return main


@pytest.fixture(autouse=True)
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROFILEHOUSE_LOG_DIR", str(tmp_path))
    monkeypatch.delenv("PROFILEHOUSE_DEBUG", raising=False)
    return tmp_path


def test_a_schema_error_is_one_line_with_exit_code_2(capsys, log_dir: Path) -> None:
    code = run_job(_fails_with(SchemaError("x.csv lacks column a (present: b)")), [], "bronze")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: x.csv lacks column a (present: b) (full trace: ")
    log = Path(err.strip().rsplit("(full trace: ", 1)[1].rstrip(")"))
    assert log.parent == log_dir and log.name.startswith("bronze-")
    assert "Traceback" in log.read_text(encoding="utf-8")


def test_a_config_error_lists_its_problems_on_one_line(capsys) -> None:
    error = ConfigError("conf/sources.yaml", ["a.b: bad value", "c: missing"])
    assert run_job(_fails_with(error), [], "silver") == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: invalid config file conf/sources.yaml: a.b: bad value; c: missing"
    )
    assert err.count("\n") == 1


def test_debug_prints_the_trace_too(capsys) -> None:
    assert run_job(_fails_with(SchemaError("bad")), ["--debug"], "bronze") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: bad")


def test_an_unexpected_error_exits_1_naming_its_type(capsys) -> None:
    assert run_job(_fails_with(KeyError("k")), [], "identity") == 1
    assert capsys.readouterr().err.startswith("error: KeyError: 'k' (full trace: ")


def test_success_returns_the_jobs_code(capsys) -> None:
    assert run_job(lambda _argv=None: 0, [], "bronze") == 0
    assert capsys.readouterr().err == ""
