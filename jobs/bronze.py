"""Bronze stage: load every new landing file of each declared source into its bronze table.

    python jobs/bronze.py --env local [--source bank_customers ...]
    spark-submit ... jobs/bronze.py --env cluster --conf-dir /path/to/conf

Each file is loaded exactly once, also across crashes (see profilehouse.ingest.bronze).
"""

from __future__ import annotations

import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.ingest.stages import ingest_figures, run_bronze_stage, selected_sources
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--source", action="append", help="only this source (repeatable; default: all)"
    )
    ctx = parse_job_args(parser, argv)
    sources = selected_sources(ctx.conf_dir, ctx.args.source)
    spark = build_spark_session(ctx.env, app_name="profilehouse-bronze")
    loads = run_bronze_stage(spark, ctx.env, sources)
    figures = ingest_figures(loads, [])
    print(f"bronze: {figures['files']} new file(s), {figures['bronze_rows']:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
