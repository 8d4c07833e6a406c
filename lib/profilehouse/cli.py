"""Argument parsing shared by every job entry point."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from profilehouse.config import EnvironmentConfig, load_environment


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
    return parser


def parse_job_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> JobContext:
    """Parse ``argv`` and load the chosen environment (ConfigError on a bad profile)."""
    args = parser.parse_args(argv)
    return JobContext(load_environment(args.env, args.conf_dir), args.conf_dir, args)
