"""Identity stage: link every silver record to one stable master customer ID.

    python jobs/identity.py --env local                  # auto: incremental when it can be
    python jobs/identity.py --env local --mode full      # train the model anew, link all
    spark-submit ... jobs/identity.py --env cluster --conf-dir /path/to/conf

Modes: ``full`` trains the linkage model and links everything; ``incremental`` re-scores and
re-links only the records changed since the last run, with the last full run's model;
``rescore`` scores every pair with that model (what ``incremental`` must equal); ``auto`` (the
default) is incremental while the last run's state fits conf/identity.yaml and its model is
younger than ``linkage_retrain_after_days``, else full.

Reads the silver tables and the PII vault named in conf/identity.yaml; writes the identity
tables and ops.identity_metrics. Reports quality against the generator's ground truth when the
environment's truth folder holds one.
"""

from __future__ import annotations

import json
import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.identity.stage import MODES, run_identity_stage
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help="auto (default): incremental while the last run's state and model are usable, "
        "else full",
    )
    ctx = parse_job_args(parser, argv)
    spark = build_spark_session(ctx.env, app_name="profilehouse-identity")
    result = run_identity_stage(
        spark, ctx.env, ctx.conf_dir, truth_uri=ctx.env.truth_uri, mode=ctx.args.mode
    )
    print(json.dumps(result.figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
