"""Resolve any person file: deduplicate one table or link two, given a linkage spec.

    python jobs/resolve.py --spec conf/linkage/febrl.yaml --input customers.csv --output out/
    python jobs/resolve.py --spec my_bank.yaml --input ours.parquet --input acquired.csv \
        --output hdfs:///linkage/acquired

The spec maps the file's columns to the names its comparisons use (see conf/linkage/febrl.yaml);
the model is estimated from the records themselves. Writes ``<output>/clusters`` (dataset,
record_id, cluster_id) and ``<output>/links`` (scored linked pairs with per-field levels and
weights) as Delta tables, overwritten on a re-run, and prints the run's figures as JSON.
"""

from __future__ import annotations

import json
import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.identity.resolve import (
    INPUT_FORMATS,
    load_linkage_spec,
    read_person_file,
    resolve_records,
    write_resolution,
)
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="linkage spec YAML")
    parser.add_argument(
        "--input", action="append", required=True, help="a person file (once: dedupe; twice: link)"
    )
    parser.add_argument("--format", choices=INPUT_FORMATS, help="default: from the extension")
    parser.add_argument("--output", required=True, help="folder or URI for the result tables")
    ctx = parse_job_args(parser, argv)
    if len(ctx.args.input) > 2:
        parser.error("--input: give one file to deduplicate or two to link")
    spec = load_linkage_spec(ctx.args.spec)
    spark = build_spark_session(ctx.env, app_name="profilehouse-resolve")
    frames = [read_person_file(spark, path, ctx.args.format) for path in ctx.args.input]
    result = resolve_records(spark, frames, spec)
    written = write_resolution(result, ctx.args.output)
    result.unpersist()
    print(json.dumps(written, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
