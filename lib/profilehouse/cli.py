"""Argument parsing and error reporting shared by every job entry point.

A job's progress goes to stderr through :func:`profilehouse.logs.log_to_console`. Its
user-facing failure is one line on stderr (``error: <what and where; what to do>``)
and exit code 2; the full trace goes to a log file named in that line, and to stderr too with
``--debug`` or ``PROFILEHOUSE_DEBUG=1``. The log is a local file on the driver (under
``$PROFILEHOUSE_LOG_DIR``, default ``<tmp>/profilehouse-logs``) because the failure may be that
the warehouse itself cannot be reached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profilehouse.config import EnvironmentConfig, load_environment
from profilehouse.errors import SPARK_ERROR_LOGGERS, ProfilehouseError, first_error_line
from profilehouse.logs import log_to_console

DEBUG_ENV = "PROFILEHOUSE_DEBUG"
LOG_DIR_ENV = "PROFILEHOUSE_LOG_DIR"
EXIT_ERROR = 2  # a failure the user can fix (input, config, schema)
EXIT_INTERNAL = 1  # anything else: a bug, reported the same way
_MAX_MESSAGE = 600
# PySpark logs every analysis error with its Java trace as JSON to stderr through these


@dataclass(frozen=True)
class JobContext:
    """What every job knows after parsing its arguments."""

    env: EnvironmentConfig
    conf_dir: Path | None
    args: argparse.Namespace


def job_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every job takes (--env, --conf-dir)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--env", default="local", help="environment profile in conf/environments.yaml"
    )
    parser.add_argument(
        "--conf-dir",
        type=Path,
        default=None,
        help="config folder (default: $PROFILEHOUSE_CONF_DIR or conf/)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"print the full stack trace of a failure (also: {DEBUG_ENV}=1)",
    )
    return parser


def parse_job_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> JobContext:
    """Parse ``argv`` and load the chosen environment (ConfigError on a bad profile)."""
    args = parser.parse_args(argv)
    return JobContext(load_environment(args.env, args.conf_dir), args.conf_dir, args)


def run_job(
    main: Callable[[list[str] | None], int], argv: list[str] | None = None, job: str | None = None
) -> int:
    """Run a job's ``main`` and return its exit code, reporting a failure as one line.

    :class:`ProfilehouseError` and Spark/Py4J errors (a wrong input caught by Spark's analyser)
    exit with 2, anything else with 1; both print ``error: <one line> (trace: <log file>)``.
    Use as ``sys.exit(run_job(main))``.
    """
    args = sys.argv[1:] if argv is None else argv
    name = job or Path(sys.argv[0]).stem or "job"
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")
    log_to_console(logging.DEBUG if debug else logging.INFO)
    if not debug:
        _quiet_spark_error_loggers()
    try:
        return main(argv)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        log = _write_trace_log(name, exc)
        code = EXIT_ERROR if _is_user_error(exc) else EXIT_INTERNAL
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        where = f" (full trace: {log})" if log else ""
        print(f"error: {one_line_message(exc)}{where}", file=sys.stderr)
        return code


def _quiet_spark_error_loggers() -> None:
    """Keep PySpark's JSON error logs (a Java trace per analysis error) off the console: the
    failure is reported as one line and its trace goes to the log file."""
    from pyspark.logger import PySparkLogger

    for name in SPARK_ERROR_LOGGERS:
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def one_line_message(exc: BaseException) -> str:
    """The exception's message on one line: a config error's problems joined by '; ', a
    Spark/Py4J error's first meaningful line (no Java trace)."""
    if isinstance(exc, ProfilehouseError):
        lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines()]
        text = "; ".join(line for line in lines if line).replace(":; ", ": ")
    else:
        text = first_error_line(str(exc))
        if not _is_user_error(exc):
            text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _is_user_error(exc: BaseException) -> bool:
    """A failure the user fixes in input or config: ours, or one Spark's analyser or the JVM
    reported (missing column, missing path, bad option)."""
    if isinstance(exc, ProfilehouseError):
        return True
    try:
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return False
    return isinstance(exc, PySparkException | Py4JJavaError)


def _write_trace_log(job: str, exc: BaseException) -> str | None:
    """Write the full trace to ``<log dir>/<job>-<UTC timestamp>.log``; its path, or None when
    the log cannot be written (the one-line error is still printed)."""
    folder = Path(os.environ.get(LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "profilehouse-logs")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{job}-{stamp}.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    except OSError:
        return None
    return str(path)
