"""Show or clear stage locks (bronze:<source>, silver:<source>, identity) of a dead run.

    python jobs/clear_lock.py --env local identity            # who holds it, since when
    python jobs/clear_lock.py --env local identity --clear    # remove it (its owner is dead)
    python jobs/clear_lock.py --env local bronze:bank_customers bronze:retail_members --clear

A crashed run's lock also frees itself when its lease ends (locks.lease_seconds in
conf/environments.yaml); clear it only when you know the owner is no longer running.
"""

from __future__ import annotations

import sys

from profilehouse.catalog import TableCatalog
from profilehouse.cli import job_parser, parse_job_args, run_job
from profilehouse.locks import clear_lock, current_owner
from profilehouse.session import build_spark_session


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="+", metavar="name", help="lock name, e.g. bronze:bank_customers or identity"
    )
    parser.add_argument("--clear", action="store_true", help="remove the locks")
    ctx = parse_job_args(parser, argv)
    spark = build_spark_session(ctx.env, app_name="profilehouse-clear-lock")
    catalog = TableCatalog.for_environment(ctx.env)
    for name in ctx.args.names:
        owner = (
            clear_lock(spark, catalog, name)
            if ctx.args.clear
            else current_owner(spark, catalog, name)
        )
        if owner is None:
            print(f"lock {name}: not held")
        else:
            done = "cleared, was " if ctx.args.clear else ""
            print(f"lock {name}: {done}held by {owner.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
