"""Silver stage: type, validate, tokenise and deduplicate each source's new bronze loads.

    python jobs/silver.py --env local [--source bank_customers ...]
    spark-submit ... jobs/silver.py --env cluster --conf-dir /path/to/conf

Needs the PII token key in $PROFILEHOUSE_TOKEN_KEY or a file named by
$PROFILEHOUSE_TOKEN_KEY_FILE. Exits non-zero when a source rejects more rows than allowed.
"""

from __future__ import annotations

import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.ingest.stages import format_ingest_table, run_silver_stage, selected_sources
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--source", action="append", help="only this source (repeatable; default: all)"
    )
    ctx = parse_job_args(parser, argv)
    sources = selected_sources(ctx.conf_dir, ctx.args.source)
    spark = build_spark_session(ctx.env, app_name="profilehouse-silver")
    loads = run_silver_stage(spark, ctx.env, sources)
    print(format_ingest_table([], loads))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
