"""Config loading: typed objects, every problem reported with file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from profilehouse.config import load_environment, load_model
from profilehouse.errors import ConfigError, ProfilehouseError
from profilehouse.generator.settings import GeneratorSettings, load_generator_settings

CONF = Path(__file__).resolve().parents[1] / "conf"


def _write_conf(tmp_path: Path, name: str, data: dict) -> Path:
    (tmp_path / name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return tmp_path


def _environments(**local_overrides: object) -> dict:
    local = {
        "master": "local[2]",
        "warehouse": "w",
        "landing": "l",
        "truth": "t",
        "delta_jars": "local",
    }
    local.update(local_overrides)
    return {"environments": {"local": local}}


def test_local_environment_loads_typed_values() -> None:
    env = load_environment("local")
    assert env.name == "local"
    assert env.delta_jars == "local"
    assert env.spark_conf["spark.sql.adaptive.enabled"] == "true"  # YAML bool → Spark string
    assert env.spark_conf["spark.sql.shuffle.partitions"] == "8"
    assert Path(env.warehouse_uri).is_absolute()


def test_cluster_environment_keeps_uris() -> None:
    env = load_environment("cluster")
    assert env.master is None
    assert env.warehouse_uri.startswith("hdfs://")


def test_unknown_environment_lists_present_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_environment("staging")
    assert "environments.staging: no such environment (present: cluster, local, test)" in str(
        err.value
    )


def test_unknown_key_names_key_and_allowed_keys(tmp_path: Path) -> None:
    conf = _write_conf(tmp_path, "environments.yaml", _environments(warehous="typo"))
    with pytest.raises(ConfigError) as err:
        load_environment("local", conf)
    message = str(err.value)
    assert str(conf / "environments.yaml") in message
    assert (
        "environments.local.warehous: unknown key (allowed: delta_jars, demo, ingest_parallelism, "
        "landing, locks, master, name, restricted_warehouse, spark_conf, truth, warehouse)"
        in message
    )


def test_bad_value_names_key_value_and_expectation(tmp_path: Path) -> None:
    conf = _write_conf(tmp_path, "environments.yaml", _environments(delta_jars="maven"))
    with pytest.raises(ConfigError) as err:
        load_environment("local", conf)
    assert (
        "environments.local.delta_jars: Input should be 'local' or 'provided' (got 'maven')"
        in str(err.value)
    )


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    data = _environments(delta_jars="maven", extra=1)
    del data["environments"]["local"]["landing"]
    conf = _write_conf(tmp_path, "environments.yaml", data)
    with pytest.raises(ConfigError) as err:
        load_environment("local", conf)
    problems = err.value.problems
    assert len(problems) == 3
    assert any(
        p.startswith("environments.local.landing: required key is missing") for p in problems
    )
    assert any(p.startswith("environments.local.extra: unknown key") for p in problems)
    assert any(p.startswith("environments.local.delta_jars:") for p in problems)


def test_demo_profiles_and_the_production_profile() -> None:
    assert load_environment("local").demo
    assert load_environment("test").demo
    cluster = load_environment("cluster")
    assert cluster.demo is False
    assert cluster.truth_uri is None
    assert cluster.restricted_warehouse_uri == "hdfs:///lakehouse/restricted"


def test_demo_is_off_and_truth_absent_unless_set(tmp_path: Path) -> None:
    data = _environments()
    del data["environments"]["local"]["truth"]
    env = load_environment("local", _write_conf(tmp_path, "environments.yaml", data))
    assert env.demo is False
    assert env.truth_uri is None


def test_a_demo_profile_needs_a_truth_folder(tmp_path: Path) -> None:
    data = _environments(demo=True)
    del data["environments"]["local"]["truth"]
    conf = _write_conf(tmp_path, "environments.yaml", data)
    with pytest.raises(ConfigError) as err:
        load_environment("local", conf)
    assert err.value.problems == [
        "environments.local.truth: Value error, a demo profile (demo: true) needs a truth "
        "folder: the generator writes its ground truth there (got None)"
    ]


def test_the_restricted_root_defaults_to_the_warehouse_sibling() -> None:
    env = load_environment("local")
    assert env.restricted_warehouse_uri == env.warehouse_uri + "-restricted"


@pytest.mark.parametrize(
    "restricted",
    ["w", "w/", "w/restricted", ".", str(CONF.parent)],
    ids=["same", "same-slash", "inside", "parent-relative", "parent-absolute"],
)
def test_the_restricted_root_must_be_apart_from_the_warehouse(
    tmp_path: Path, restricted: str
) -> None:
    conf = _write_conf(
        tmp_path, "environments.yaml", _environments(restricted_warehouse=restricted)
    )
    with pytest.raises(ConfigError) as err:
        load_environment("local", conf)
    assert err.value.problems == [
        "environments.local.restricted_warehouse: Value error, must be a root apart from "
        "warehouse 'w' (neither inside the other), so that analysts' access to the warehouse "
        f"never reaches clear PII (got {restricted!r})"
    ]


def test_require_demo_names_the_profile_and_the_setting() -> None:
    with pytest.raises(ProfilehouseError) as err:
        load_environment("cluster").require_demo("reset the warehouse")
    assert str(err.value) == (
        "refusing to reset the warehouse: environment 'cluster' is not a demo profile "
        "(demo: false in environments.yaml); demo data generation and warehouse resets run "
        "only on demo profiles"
    )
    load_environment("local").require_demo("reset the warehouse")  # no error


def test_missing_file_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_environment("local", tmp_path)
    (tmp_path / "environments.yaml").write_text("environments: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_environment("local", tmp_path)


def _generator_data() -> dict:
    return yaml.safe_load((CONF / "generator.yaml").read_text(encoding="utf-8"))


def test_generator_settings_load() -> None:
    cfg = load_generator_settings()
    assert cfg.persons == round(cfg.persons_per_scale_factor * cfg.scale_factor)
    assert cfg.with_overrides(scale_factor=0.01).persons == 1000
    assert cfg.history.initial_batch < cfg.history.end


@pytest.mark.parametrize(
    ("description", "mutate", "expected"),
    [
        (
            "rate above 1",
            lambda d: d["dirt"].update(name_typo=1.5),
            "dirt.name_typo: Input should be less than or equal to 1 (got 1.5)",
        ),
        (
            "unknown persona",
            lambda d: d["personas"].update(NIGHT_OWL=d["personas"]["DORMANT"]),
            "unknown: NIGHT_OWL",
        ),
        (
            "campaign ends before it starts",
            lambda d: d["campaigns"][0].update(end_date="2020-01-01"),
            "campaigns.0: Value error, end_date (2020-01-01) is before start_date",
        ),
        (
            "history reversed",
            lambda d: d["history"].update(start="2026-01-01"),
            "history: Value error, end (2025-12-31) must be after start (2026-01-01)",
        ),
        (
            "bank campaign targeting members",
            lambda d: d["campaigns"][0].update(target_key="member_id"),
            "a bank campaign cannot target member_id",
        ),
        (
            "unknown dirt pattern",
            lambda d: d["dirt"].update(name_typos=0.1),
            "dirt.name_typos: unknown key (allowed: bad_date, birth_swapped, corrected_redelivery,",
        ),
    ],
)
def test_generator_settings_errors(tmp_path: Path, description: str, mutate, expected: str) -> None:
    data = _generator_data()
    mutate(data)
    path = tmp_path / "generator.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_model(path, GeneratorSettings)
    assert str(path) in str(err.value), description
    assert expected in str(err.value), description
