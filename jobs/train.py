"""Train, evaluate and score a bring-your-own-data logistic model from a YAML spec.

    python jobs/train.py --spec conf/byo/penguins.yaml               # train, report, score
    python jobs/train.py --spec conf/byo/penguins.yaml --score-only  # score with the saved model
    spark-submit ... jobs/train.py --env cluster --spec /path/to/spec.yaml

Trains on the spec's training split, evaluates on its validation split, writes the model and
report.json / report.md under the spec's output folder, then scores the spec's score table (if
any) with the model reloaded from disk. The spec format: profilehouse.models.byo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.models.byo import load_byo_spec, run_byo, run_byo_scoring
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="BYO spec (YAML)")
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="score the spec's score table with the model already saved under its output",
    )
    ctx = parse_job_args(parser, argv)
    spec = load_byo_spec(ctx.args.spec)
    spark = build_spark_session(ctx.env, app_name=f"profilehouse-train-{spec.name}")
    if ctx.args.score_only:
        figures = vars(run_byo_scoring(spark, spec))
    else:
        figures = run_byo(spark, spec).figures()
    print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
