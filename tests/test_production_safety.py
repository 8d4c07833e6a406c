"""Production safety: a non-demo profile never writes to landing, never deletes a table, and
production code never loads the demo generator (real local Spark + Delta, tmp folders).

What a production run may do to existing tables (see README "Running on a cluster"):
- bronze, silver, vault and ops tables: only appends (WRITE in mode Append) and MERGEs — except
  ``ops.locks``, whose rows are each run's lock (taken, renewed and released);
- identity and gold tables are derived state, recomputed by every run: they may be overwritten
  (gold: one snapshot date's partition at a time), never dropped (each still exists afterwards
  with its earlier history).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from profilehouse import fs
from profilehouse.catalog import TableCatalog
from profilehouse.cli import run_job
from profilehouse.config import EnvironmentConfig, load_environment
from profilehouse.errors import ProfilehouseError
from profilehouse.generator import generate
from profilehouse.pipeline import reset_warehouse, run_generate_stage, run_pipeline
from tests.conftest import logged_messages

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "profilehouse"
APPEND_OR_MERGE_LAYERS = ("bronze", "silver", "vault", "ops")
# coordination state, not data: a lock row is MERGEd in, renewed (UPDATE) and DELETEd by each run
COORDINATION_TABLES = ("ops/locks",)


def _production_env(root: Path, **update: object) -> EnvironmentConfig:
    """A cluster-like profile over local folders: demo off, no ground truth."""
    data = load_environment("test").model_dump()
    data |= {
        "name": "prod",
        "demo": False,
        "truth": None,
        "landing": str(root / "landing"),
        "warehouse": str(root / "warehouse"),
        "restricted_warehouse": str(root / "restricted"),
    }
    return EnvironmentConfig.model_validate(data | update)


def _small_table(spark: SparkSession, location: str) -> None:
    spark.range(3).write.format("delta").mode("overwrite").save(location)


def _landing_listing(landing: Path) -> dict[str, tuple[int, int, str]]:
    """relative path → (size, mtime in ns, sha256) of every file, hidden ones included."""
    listing = {}
    for folder, _dirs, files in os.walk(landing):
        for name in files:
            path = Path(folder, name)
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            listing[str(path.relative_to(landing))] = (stat.st_size, stat.st_mtime_ns, digest)
    return listing


# ---------------------------------------------------------------------------------------------
# production modules never load the generator
# ---------------------------------------------------------------------------------------------


def _production_modules() -> list[str]:
    modules = []
    for path in sorted(LIB.rglob("*.py")):
        parts = path.relative_to(LIB.parent).with_suffix("").parts
        if parts[1:2] == ("generator",):
            continue
        modules.append(".".join(p for p in parts if p != "__init__"))
    return modules


def test_production_modules_do_not_import_the_generator() -> None:
    modules = _production_modules()
    assert "profilehouse.pipeline" in modules and "profilehouse.identity.quality" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('profilehouse.generator')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


# ---------------------------------------------------------------------------------------------
# guards at every depth: generate, reset, delete, jobs
# ---------------------------------------------------------------------------------------------


def test_generate_stage_refuses_a_production_profile(spark: SparkSession, tmp_path: Path) -> None:
    env = _production_env(tmp_path)
    export = tmp_path / "landing" / "bank" / "customers" / "batch=2026-01-01" / "export.csv"
    export.parent.mkdir(parents=True)
    export.write_text("cust_no,name\nC1,x\n", encoding="utf-8")
    before = _landing_listing(tmp_path / "landing")
    with pytest.raises(ProfilehouseError) as err:
        run_generate_stage(spark, env, None, scale_factor=0.01)
    assert str(err.value).startswith(
        f"refusing to generate demo data into landing {tmp_path / 'landing'}: environment 'prod' "
        "is not a demo profile (demo: false in environments.yaml)"
    )
    assert _landing_listing(tmp_path / "landing") == before


def test_generate_refuses_a_landing_it_did_not_fill(
    spark: SparkSession, gen_cfg, tmp_path: Path
) -> None:
    export = tmp_path / "landing" / "pos" / "export.csv"
    export.parent.mkdir(parents=True)
    export.write_text("receipt_id\nR1\n", encoding="utf-8")
    before = _landing_listing(tmp_path / "landing")
    with pytest.raises(ProfilehouseError, match="holds files the demo generator did not write"):
        generate(spark, gen_cfg, str(tmp_path / "landing"), str(tmp_path / "t"))
    assert _landing_listing(tmp_path / "landing") == before


def test_reset_warehouse_refuses_a_production_profile(spark: SparkSession, tmp_path: Path) -> None:
    env = _production_env(tmp_path)
    catalog = TableCatalog.for_environment(env)
    tables = [catalog.table("silver", "kept"), catalog.table("vault", "kept")]
    for ref in tables:
        _small_table(spark, ref.location)
    with pytest.raises(ProfilehouseError, match="refusing to reset the warehouse: environment"):
        reset_warehouse(spark, env)
    assert all(DeltaTable.isDeltaTable(spark, ref.location) for ref in tables)


def test_reset_warehouse_drops_both_zones_on_a_demo_profile(
    spark: SparkSession, tmp_path: Path
) -> None:
    env = _production_env(tmp_path, demo=True, truth=str(tmp_path / "truth"))
    catalog = TableCatalog.for_environment(env)
    tables = [catalog.table(*t) for t in [("silver", "a"), ("bronze", "b"), ("ops", "quarantine")]]
    for ref in tables:
        _small_table(spark, ref.location)
    with logged_messages() as messages:
        reset_warehouse(spark, env)
    assert not any(fs.path_exists(spark, ref.location) for ref in tables)
    assert messages == ["  new demo data: dropped the warehouse's bronze, silver, ops tables"]


def test_delete_path_refuses_tables_outside_a_demo_profile(
    spark: SparkSession, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    _small_table(spark, str(warehouse / "silver" / "t"))
    for target in (warehouse, warehouse / "silver", warehouse / "silver" / "t"):
        with pytest.raises(ProfilehouseError, match=f"refusing to delete {target}: it holds"):
            fs.delete_path(spark, str(target))
    with pytest.raises(ProfilehouseError, match="environment 'prod' is not a demo profile"):
        fs.delete_path(spark, str(warehouse), _production_env(tmp_path))
    assert DeltaTable.isDeltaTable(spark, str(warehouse / "silver" / "t"))
    scratch = tmp_path / "_checkpoints" / "rdd-1"
    scratch.mkdir(parents=True)
    (scratch / "part-0").write_bytes(b"x")
    fs.delete_path(spark, str(scratch.parent))  # no tables: no profile needed
    assert not scratch.parent.exists()
    demo = _production_env(tmp_path, demo=True, truth=str(tmp_path / "truth"))
    fs.delete_path(spark, str(warehouse), demo)
    assert not warehouse.exists()


def _write_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    prod = {k: str(v) for k, v in {"landing": tmp_path / "l", "warehouse": tmp_path / "w"}.items()}
    (conf / "environments.yaml").write_text(
        "environments:\n  prod:\n    demo: false\n    delta_jars: provided\n"
        + "".join(f"    {k}: {v}\n" for k, v in prod.items()),
        encoding="utf-8",
    )
    return conf


def _load_job(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"job_{name}", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("job", "args", "refused"),
    [
        ("run_pipeline", ["--regenerate"], "apply --regenerate (they shape the demo data)"),
        ("run_pipeline", ["--scale-factor", "1"], "apply --scale-factor (they shape the demo"),
        ("generate_data", [], "generate demo data into landing"),
    ],
)
def test_jobs_refuse_demo_work_on_a_production_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture, job: str, args: list[str], refused: str
) -> None:
    conf = _write_conf(tmp_path)
    code = run_job(_load_job(job).main, ["--env", "prod", "--conf-dir", str(conf), *args], job)
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert err.startswith(f"error: refusing to {refused}")
    assert "environment 'prod' is not a demo profile (demo: false" in err
    assert not (tmp_path / "l").exists() and not (tmp_path / "w").exists()


# ---------------------------------------------------------------------------------------------
# the whole pipeline: a demo run resets, a production run over it only appends and merges
# ---------------------------------------------------------------------------------------------


def _tables(root: Path) -> dict[str, Path]:
    """``layer/name`` → path of every Delta table under a storage root."""
    found = {}
    for log in sorted(root.glob("*/*/_delta_log")):
        table = log.parent
        found[f"{table.parent.name}/{table.name}"] = table
    return found


def _history(spark: SparkSession, path: Path) -> list[dict]:
    rows = DeltaTable.forPath(spark, str(path)).history().collect()
    return sorted(
        (
            {
                "version": r["version"],
                "timestamp": r["timestamp"],
                "operation": r["operation"],
                "mode": (r["operationParameters"] or {}).get("mode"),
            }
            for r in rows
        ),
        key=lambda h: h["version"],
    )


def _add_batch(landing: Path, location: str, key_prefix: str, rows: int) -> Path:
    """A new batch of ``location``: the first rows of an existing file under new keys."""
    existing = sorted((landing / location).glob("batch=*/*.csv"))[0]
    with existing.open(encoding="utf-8", newline="") as handle:
        lines = list(csv.reader(handle))
    header, body = lines[0], [r for r in lines[1:] if len(r) == len(lines[0])][:rows]
    target = landing / location / "batch=2099-01-01" / "export-0001.csv"
    target.parent.mkdir(parents=True)
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[key_prefix + r[0], *r[1:]] for r in body])
    return target


@pytest.fixture(scope="module")
def demo_run(spark: SparkSession, generated, tmp_path_factory: pytest.TempPathFactory):
    """A demo run with --regenerate over a copy of the SF 0.01 landing and a stale warehouse."""
    root = tmp_path_factory.mktemp("safety")
    shutil.copytree(generated.landing, root / "landing")
    env = _production_env(root, name="demo", demo=True, truth=str(root / "truth"))
    catalog = TableCatalog.for_environment(env)
    stale = [catalog.table("gold", "stale"), catalog.table("bronze", "stale")]
    for ref in stale:
        _small_table(spark, ref.location)
    with logged_messages() as messages:
        summary, _ = run_pipeline(spark, env, scale_factor=0.01, regenerate=True)
    return root, env, stale, summary, messages


@pytest.mark.slow
def test_a_demo_run_with_regenerate_resets_the_warehouse(spark: SparkSession, demo_run) -> None:
    _root, _env, stale, summary, messages = demo_run
    assert summary.status == "succeeded"
    assert not summary.stages["generate"]["reused_existing_data"]
    assert "  new demo data: dropped the warehouse's bronze, gold tables" in messages
    assert not any(DeltaTable.isDeltaTable(spark, ref.location) for ref in stale)
    assert summary.stages["identity"]["precision"] > 0.9  # measured against the ground truth
    seconds = summary.seconds_by_stage()
    assert list(seconds) == ["generate", "bronze", "silver", "identity", "gold", "models"]
    assert all(s > 0 for s in seconds.values())
    gold = summary.stages["gold"]
    assert gold["customers"] > 0 and gold["tags"] >= 120
    assert 0 < gold["coverage"]["mean"] <= 1
    assert sum(gold["coverage"]["tags_by_band"].values()) == gold["tags"]
    assert gold["kpis"]["deposit_customers"] > 0
    models = summary.stages["models"]
    assert models["segments"] and all(s["name_zh"] for s in models["segments"])
    assert models["persona_ari"] is not None  # a demo run has the personas to compare with
    for name, figures in models["propensity"].items():
        assert 0 <= figures["validation"]["roc_auc"] <= 1, name
    assert models["profile"]["customers"] > 0
    assert any(
        m.startswith(f"snapshot {gold['snapshot_date']} (as of event time)") for m in messages
    )
    assert summary.stages["bronze"]["files"] > 0 and summary.stages["silver"]["accepted"] > 0
    assert any(m.startswith("stage times: generate ") for m in messages)


@pytest.mark.slow
def test_a_production_run_only_appends_and_merges(spark: SparkSession, demo_run) -> None:
    root, _demo_env, _stale, _summary, _messages = demo_run
    env = _production_env(root)
    landing = root / "landing"
    _add_batch(landing, "bank/customers", "NEW", rows=3)
    _add_batch(landing, "marketing/campaigns", "NEW", rows=1)
    files_before = _landing_listing(landing)
    zones = (root / "warehouse", root / "restricted")
    tables_before = {
        name: _history(spark, path) for zone in zones for name, path in _tables(zone).items()
    }
    assert {"bronze/bank_customers", "vault/pii", "ops/quarantine"} <= set(_tables(zones[1]))
    assert not {n for n in _tables(zones[0]) if n.startswith(("bronze/", "vault/"))}
    catalog = TableCatalog.for_environment(env)
    bronze = catalog.table("bronze", "bank_customers").location
    rows_before = spark.read.format("delta").load(bronze).count()

    with logged_messages() as messages:
        summary, _ = run_pipeline(spark, env)

    assert summary.status == "succeeded"
    assert "generate" not in summary.stages
    assert not any(m.startswith("== stage: generate") for m in messages)
    assert summary.stages["identity"]["ground_truth"] == "none"
    assert summary.stages["models"]["persona_ari"] is None  # no personas without a truth
    assert summary.stages["gold"]["customers"] > 0
    assert "  identity quality: no ground truth (production run)" in messages
    assert spark.read.format("delta").load(bronze).count() == rows_before + 3
    # (a) landing untouched: no file created, modified or deleted
    assert _landing_listing(landing) == files_before
    # (b), (c) every table still there with its history; only appends / merges where it counts
    tables_after = {name: path for zone in zones for name, path in _tables(zone).items()}
    assert set(tables_before) <= set(tables_after)
    for name, before in tables_before.items():
        after = _history(spark, tables_after[name])
        assert after[: len(before)] == before, f"{name} was deleted or rewritten"
        if not name.startswith(APPEND_OR_MERGE_LAYERS) or name in COORDINATION_TABLES:
            continue
        new = [(h["operation"], h["mode"]) for h in after[len(before) :]]
        bad = [c for c in new if c != ("WRITE", "Append") and c[0] != "MERGE"]
        assert not bad, f"{name}: {bad}"
