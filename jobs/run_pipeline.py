"""Run the whole pipeline: on a demo profile generate data if absent, then every stage.

    python jobs/run_pipeline.py --env local [--scale-factor 0.1] [--regenerate]
    spark-submit ... jobs/run_pipeline.py --env cluster --conf-dir /path/to/conf

On a profile with ``demo: false`` (``cluster``) nothing is generated nor reset: the stages ingest
what is in landing. ``--scale-factor`` / ``--regenerate`` are refused there.
The last line printed is ``run summary: <path to the run's JSON summary>``.
"""

from __future__ import annotations

import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.pipeline import run_pipeline, validate_run_options
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--scale-factor", type=float, default=None, help="override conf/generator.yaml"
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="regenerate demo data even if present"
    )
    ctx = parse_job_args(parser, argv)
    validate_run_options(ctx.env, ctx.args.scale_factor, ctx.args.regenerate)
    spark = build_spark_session(ctx.env, app_name="profilehouse-pipeline")
    summary, path = run_pipeline(
        spark,
        ctx.env,
        ctx.conf_dir,
        scale_factor=ctx.args.scale_factor,
        regenerate=ctx.args.regenerate,
    )
    print(f"pipeline {summary.status}: run {summary.run_id}")
    print(f"run summary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
