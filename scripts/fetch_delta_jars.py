"""Fetch the Delta Lake jars once into .cache/jars so every later local run works offline.

Uses Spark's own package resolver (Ivy, Maven Central) with a project-local Ivy cache, then keeps
only the Delta jars themselves: their other dependencies already ship with pyspark.
Idempotent: does nothing when the jars are already there.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from profilehouse.session import (  # noqa: E402
    DEFAULT_JARS_DIR,
    delta_jar_names,
    delta_maven_coordinates,
)


def main() -> int:
    jars_dir = DEFAULT_JARS_DIR
    wanted = delta_jar_names()
    if all((jars_dir / name).is_file() for name in wanted):
        print(f"delta jars present in {jars_dir}")
        return 0
    from pyspark.sql import SparkSession

    ivy_dir = ROOT / ".cache" / "ivy"
    coords = delta_maven_coordinates()
    print(f"fetching {', '.join(coords)} from Maven Central (once) ...", flush=True)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("fetch-delta-jars")
        .config("spark.jars.packages", coords[0])
        .config("spark.jars.ivy", str(ivy_dir))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    jars_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    for coord, name in zip(coords, wanted, strict=True):
        group, _artifact, _ = coord.split(":")
        fetched = ivy_dir / "jars" / f"{group}_{name}"
        if not fetched.is_file():
            missing.append(str(fetched))
            continue
        with tempfile.NamedTemporaryFile(dir=jars_dir, delete=False) as tmp:
            shutil.copyfile(fetched, tmp.name)
        Path(tmp.name).replace(jars_dir / name)
    if missing:
        print(f"error: resolver did not produce {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"delta jars fetched into {jars_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
