"""Models stage: segments, RFM tiers, CLV, propensity scores and the customer profile.

    python jobs/models.py --env local
    spark-submit ... jobs/models.py --env cluster --conf-dir /path/to/conf

Reads the newest gold snapshot (run jobs/gold.py first) and makes the older snapshots the
propensity models train on when they are missing; writes gold.customer_segments,
gold.segment_summary, gold.customer_clv, gold.model_scores (+ _history) and
gold.customer_profile, and registers every model (MLflow, ops.model_versions).
"""

from __future__ import annotations

import json
import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.models.stage import format_models_report, run_models_stage
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    ctx = parse_job_args(parser, argv)
    spark = build_spark_session(ctx.env, app_name="profilehouse-models")
    result = run_models_stage(spark, ctx.env, ctx.conf_dir, truth_uri=ctx.env.truth_uri)
    print(format_models_report(result), file=sys.stderr)
    print(json.dumps(result.figures, indent=2, default=str, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
