"""Generate the synthetic bank + retail + marketing sources into the landing zone.

python jobs/generate_data.py --env local --scale-factor 1 [--seed 7] [--force]

Demo profiles only (``demo: true``): a production profile's landing holds real exports.
"""

from __future__ import annotations

import sys

from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.pipeline import format_generation_table, run_generate_stage
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--scale-factor", type=float, default=None, help="override conf/generator.yaml"
    )
    parser.add_argument("--seed", type=int, default=None, help="override conf/generator.yaml")
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if identical data exists"
    )
    ctx = parse_job_args(parser, argv)
    ctx.env.require_demo(f"generate demo data into landing {ctx.env.landing_uri}")
    spark = build_spark_session(ctx.env, app_name="profilehouse-generate")
    report = run_generate_stage(
        spark, ctx.env, ctx.conf_dir, ctx.args.scale_factor, ctx.args.seed, force=ctx.args.force
    )
    print(format_generation_table(report))
    print(f"generated in {report.seconds:.1f} s; ground truth in {report.truth}")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
