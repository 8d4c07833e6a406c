"""The resolver as a library call on a table it knows nothing about (real Spark)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import SchemaError
from profilehouse.identity.resolve import LinkageSpec, read_person_file, resolve_records

ROOT = Path(__file__).resolve().parents[2]


def _resolve_job():
    """jobs/resolve.py as a module (jobs are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("job_resolve", ROOT / "jobs" / "resolve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SPEC = LinkageSpec.model_validate(
    {
        "id_column": "ref",
        "columns": {
            "first": "lower(trim(GIVEN))",
            "last": "lower(trim(FAMILY))",
            "zip": "POSTCODE",
            "ssn": "regexp_replace(SSN, '-', '')",
        },
        "linkage": {
            "comparisons": [
                {"name": "first", "kind": "string", "column": "first", "thresholds": [1]},
                {"name": "last", "kind": "string", "column": "last", "thresholds": [1]},
                {"name": "zip", "kind": "exact", "column": "zip"},
                {"name": "ssn", "kind": "string", "column": "ssn", "thresholds": [1]},
            ],
            "blocking": [["last"], ["ssn"], ["zip"]],
            "u_sample_pairs": 20_000,
        },
    }
)

FIRST = ["anna", "ben", "carla", "dmitri", "erin", "farid", "gita", "hugo", "ines", "jon"]
LAST = ["smith", "ng", "garcia", "okafor", "meyer", "rossi", "tanaka", "silva", "kowalski", "li"]


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return word[:i] + rng.choice("aeiou") + word[i + 1 :]


def _files(n: int, seed: int) -> tuple[list, list]:
    """Two files of the same n persons (ids p<i>), the second with a typo in one field each."""
    rng = random.Random(seed)
    a, b = [], []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        zip_code, ssn = f"{rng.randrange(1000, 9999)}", f"{rng.randrange(10**8, 10**9)}"
        a.append((f"p{i}-a", first.upper(), last, zip_code, ssn))
        field = rng.randrange(3)
        b.append(
            (
                f"p{i}-b",
                _typo(first, rng) if field == 0 else first,
                _typo(last, rng) if field == 1 else f" {last} ",
                zip_code,
                f"{ssn[:3]}-{ssn[3:]}" if field != 2 else _typo(ssn, rng),
            )
        )
    return a, b


SCHEMA = "ref string, GIVEN string, FAMILY string, POSTCODE string, SSN string"


def test_links_two_unseen_files(spark: SparkSession):
    a, b = _files(300, seed=3)
    result = resolve_records(
        spark, [spark.createDataFrame(a, SCHEMA), spark.createDataFrame(b, SCHEMA)], SPEC
    )
    person = F.regexp_extract("record_id", r"^(p\d+)-", 1)
    clusters = result.clusters.withColumn("person", person)
    right = clusters.groupBy("cluster_id").agg(F.countDistinct("person").alias("persons"))
    assert right.where("persons > 1").count() == 0  # no cluster mixes persons
    together = clusters.groupBy("person").agg(F.countDistinct("cluster_id").alias("clusters"))
    assert together.where("clusters = 1").count() >= 0.97 * 300
    assert result.model.prior > 0


def test_deduplicates_one_file(spark: SparkSession):
    a, b = _files(200, seed=4)
    result = resolve_records(spark, [spark.createDataFrame(a + b, SCHEMA)], SPEC)
    clusters = result.clusters.withColumn("person", F.regexp_extract("record_id", r"^(p\d+)-", 1))
    per_cluster = clusters.groupBy("cluster_id").agg(F.countDistinct("person").alias("persons"))
    assert per_cluster.where("persons > 1").count() == 0
    assert clusters.select("cluster_id").distinct().count() <= 1.05 * 200


def test_missing_id_column_is_named(spark: SparkSession):
    df = spark.createDataFrame([("x",)], "name string")
    with pytest.raises(SchemaError) as err:
        resolve_records(spark, [df], SPEC)
    assert str(err.value) == "input 0: id column 'ref' missing (present: name)"


def test_the_resolve_job_dedupes_a_csv_file_into_delta_tables(spark, tmp_path, capsys):
    a, b = _files(150, seed=5)
    source = tmp_path / "people.csv"
    spark.createDataFrame(a + b, SCHEMA).coalesce(1).write.option("header", True).csv(str(source))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC.model_dump(mode="json")), encoding="utf-8")
    out = tmp_path / "out"
    args = ["--env", "test", "--spec", str(spec), "--input", str(source), "--format", "csv"]
    assert _resolve_job().main([*args, "--output", str(out)]) == 0
    figures = json.loads(capsys.readouterr().out)
    clusters = spark.read.format("delta").load(str(out / "clusters"))
    assert figures["records"] == clusters.count() == 300
    persons = clusters.withColumn("person", F.regexp_extract("record_id", r"^(p\d+)-", 1))
    mixed = persons.groupBy("cluster_id").agg(F.countDistinct("person").alias("n")).where("n > 1")
    assert mixed.count() == 0
    assert figures["clusters"] <= 1.05 * 150
    # a re-run replaces the tables instead of adding to them
    assert _resolve_job().main([*args, "--output", str(out)]) == 0
    assert spark.read.format("delta").load(str(out / "clusters")).count() == 300


def test_an_unknown_file_format_is_named(spark, tmp_path):
    with pytest.raises(SchemaError, match=r"people\.xlsx: cannot tell the file format"):
        read_person_file(spark, str(tmp_path / "people.xlsx"))


def _run_resolve_job(tmp_path: Path, header: str) -> subprocess.CompletedProcess:
    """jobs/resolve.py in its own process on a CSV file with ``header``, as a user runs it."""
    a, b = _files(40, seed=6)
    lines = [header] + [",".join(row) for row in a + b]
    source = tmp_path / "people.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC.model_dump(mode="json")), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "lib"),
        "PROFILEHOUSE_LOG_DIR": str(tmp_path / "logs"),
        "PROFILEHOUSE_DEBUG": "",
    }
    args = ["--env", "test", "--spec", str(spec), "--input", str(source)]
    command = [sys.executable, str(ROOT / "jobs" / "resolve.py"), *args]
    return subprocess.run(
        [*command, "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_the_resolve_job_reads_header_names_with_spaces_after_the_commas(tmp_path):
    done = _run_resolve_job(tmp_path, "ref, GIVEN, FAMILY, POSTCODE, SSN")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["records"] == 80


def test_a_missing_column_stops_the_resolve_job_with_one_line(tmp_path):
    done = _run_resolve_job(tmp_path, "ref,GIVEN,SURNAME,POSTCODE,SSN")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "error: input 0: column 'FAMILY' (used by columns.last of the spec) missing "
        "(present: ref, GIVEN, SURNAME, POSTCODE, SSN)"
    )
    log = errors[0].rsplit("(full trace: ", 1)[1].rstrip(")")
    assert "SchemaError" in Path(log).read_text(encoding="utf-8")
    for trace_mark in ("Traceback", "at org.apache", "Py4JJavaError", "AnalysisException"):
        assert trace_mark not in done.stderr
