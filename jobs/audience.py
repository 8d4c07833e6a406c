"""Audience selection (人群圈选): count and list the customers a tag expression selects.

    python jobs/audience.py --env local --name dl_prospects \
        --where "存贷客户 = false AND 高净值客户 IN ('A','B') AND 数字活跃 = '高'"

Tags are named by code or Chinese name (docs/tag_dictionary.md). The expression is checked
against conf/tags/ first (an unknown tag or value fails naming it); the count comes from
gold.customer_tags at the newest snapshot (or --snapshot-date), the members go to
gold.audiences (the audience's rows for that snapshot replaced on a re-run). Customers who
opted out of marketing (tags marked suppresses_audiences) are left out and counted as
"suppressed", unless --include-suppressed.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from profilehouse.catalog import TableCatalog
from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.gold.audience import select_audience
from profilehouse.gold.feature_config import load_feature_config
from profilehouse.gold.tag_registry import load_tag_registry
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="audience name (lower_snake_case)")
    parser.add_argument("--where", required=True, help="boolean expression over tags")
    parser.add_argument("--snapshot-date", type=dt.date.fromisoformat, default=None)
    parser.add_argument(
        "--include-suppressed",
        action="store_true",
        help="keep customers a suppressing tag (opted out of marketing) would leave out",
    )
    ctx = parse_job_args(parser, argv)
    registry = load_tag_registry(load_feature_config(ctx.conf_dir).schema, ctx.conf_dir)
    spark = build_spark_session(ctx.env, app_name="profilehouse-audience")
    result = select_audience(
        spark,
        TableCatalog.for_environment(ctx.env),
        registry,
        ctx.args.name,
        ctx.args.where,
        ctx.args.snapshot_date,
        include_suppressed=ctx.args.include_suppressed,
    )
    print(
        json.dumps(
            {
                "audience": result.name,
                "snapshot_date": result.snapshot_date.isoformat(),
                "count": result.count,
                "suppressed": result.suppressed,
                "seconds_to_count": round(result.seconds_to_count, 3),
                "members": result.table,
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
