"""Gold stage: feature snapshot, tags, tag catalog and KPIs for every master customer.

    python jobs/gold.py --env local              # snapshot at the newest event date
    python jobs/gold.py --env local --snapshot-date 2025-12-31
    python jobs/gold.py --env local --snapshot-date 2025-11-30 --known-at   # remake as first made
    spark-submit ... jobs/gold.py --env cluster --conf-dir /path/to/conf

Reads the silver tables named in conf/features.yaml and identity.master_members /
golden_records; writes gold.features, gold.customer_tags, gold.tag_values, gold.tag_catalog,
gold.kpi_daily and gold.snapshot_runs, each snapshot date a partition replaced as a whole.
``--known-at`` recomputes a snapshot from the table versions the run that first made it read
(late and corrected records left out), so a model's training set can be rebuilt exactly.
``--mode``: ``auto`` (default) recomputes only the customers whose inputs changed since an
earlier snapshot, ``full`` everyone, ``incremental`` fails when it cannot.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.gold.stage import REFRESH_MODES, run_gold_stage
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--snapshot-date",
        type=dt.date.fromisoformat,
        default=None,
        help="YYYY-MM-DD (default: the newest event date in silver)",
    )
    parser.add_argument(
        "--known-at",
        action="store_true",
        help="remake the snapshot from the input versions its first run read",
    )
    parser.add_argument(
        "--mode",
        choices=REFRESH_MODES,
        default="auto",
        help="auto: as snapshot.auto_refresh in conf/features.yaml says (default full); "
        "incremental: refresh from an earlier snapshot; full: recompute everyone",
    )
    ctx = parse_job_args(parser, argv)
    spark = build_spark_session(ctx.env, app_name="profilehouse-gold")
    result = run_gold_stage(
        spark,
        ctx.env,
        ctx.conf_dir,
        snapshot_date=ctx.args.snapshot_date,
        known_at=ctx.args.known_at,
        mode=ctx.args.mode,
    )
    print(json.dumps(result.figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
