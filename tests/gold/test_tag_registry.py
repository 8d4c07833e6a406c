"""The tag registry: every class of config error is reported, naming the file and the tag."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from profilehouse.errors import ConfigError
from profilehouse.gold.dictionary import tag_dictionary_markdown
from profilehouse.gold.feature_config import load_feature_config
from profilehouse.gold.tag_registry import check_tag_sql, load_tag_registry

FEATURES = {"txn_count_90d": "bigint", "aum": "double", "city": "string", "age": "bigint"}
HIERARCHY = {"hierarchy": {"资产": {"规模": ["AUM", "存款"]}, "行为": {"交易": ["活跃度"]}}}


def _tag(code: str, **overrides) -> dict:
    tag = {
        "code": code,
        "name": {"zh": f"标签{code}", "en": f"Tag {code}"},
        "path": "资产/规模/AUM",
        "kind": "rule",
        "value_type": "boolean",
        "sql": "aum > 0",
        "description": "a test tag",
    }
    tag.update(overrides)
    return {k: v for k, v in tag.items() if v is not None}


def _conf(tmp_path: Path, files: dict[str, list[dict]], hierarchy: dict = HIERARCHY) -> Path:
    folder = tmp_path / "tags"
    folder.mkdir()
    (folder / "hierarchy.yaml").write_text(yaml.safe_dump(hierarchy, allow_unicode=True))
    for name, tags in files.items():
        body = {"owner": "test team", "tags": tags}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(body, allow_unicode=True))
    return tmp_path


def _problems(tmp_path: Path, files: dict[str, list[dict]], **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_tag_registry(FEATURES, _conf(tmp_path, files, **kwargs))
    return caught.value.problems


def _one(problems: list[str], *parts: str) -> str:
    found = [p for p in problems if all(part in p for part in parts)]
    assert len(found) == 1, (parts, problems)
    return found[0]


def test_a_valid_registry_loads_in_dependency_order(tmp_path: Path) -> None:
    files = {
        "bank": [
            _tag("rich_and_active", sql="rich AND txn_count_90d > 10"),
            _tag("rich", sql="aum >= 1000000"),
        ]
    }
    registry = load_tag_registry(FEATURES, _conf(tmp_path, files))
    assert [t.code for t in registry.tags] == ["rich", "rich_and_active"]
    assert registry.by_code["rich_and_active"].tag_inputs == {"rich"}
    assert registry.by_code["rich_and_active"].feature_inputs == {"txn_count_90d"}
    assert [[t.code for t in level] for level in registry.levels()] == [
        ["rich"],
        ["rich_and_active"],
    ]
    assert registry.by_code["rich"].family == "bank"
    assert registry.by_code["rich"].owner == "test team"


def test_bad_keys_and_values_name_file_and_tag(tmp_path: Path) -> None:
    files = {"bank": [_tag("ok"), _tag("bad_kind", kind="guess", colour="red")]}
    problems = _problems(tmp_path, files)
    assert "bank.yaml: tag bad_kind: tags.1.kind" in _one(problems, "tags.1.kind")
    colour = _one(problems, "colour")
    assert colour.startswith("bank.yaml: tag bad_kind:") and "unknown key" in colour


def test_only_a_boolean_tag_may_suppress_audiences(tmp_path: Path) -> None:
    files = {
        "marketing": [
            _tag("opted_out", suppresses_audiences=True),
            _tag(
                "tier",
                value_type="category",
                values=["A", "B"],
                sql="'A'",
                suppresses_audiences=True,
            ),
        ]
    }
    problem = _one(_problems(tmp_path, files), "suppresses_audiences")
    assert problem.startswith("marketing.yaml: tag tier:") and "boolean" in problem


def test_duplicate_codes_across_files(tmp_path: Path) -> None:
    files = {"bank": [_tag("rich")], "retail": [_tag("Rich".lower())]}
    problem = _one(_problems(tmp_path, files), "duplicate code")
    assert problem.startswith("retail.yaml: tag rich:") and "bank.yaml" in problem


def test_chinese_names_are_unique(tmp_path: Path) -> None:
    twin = _tag("twin", name={"zh": "标签rich", "en": "Twin"})
    problem = _one(_problems(tmp_path, {"bank": [_tag("rich"), twin]}), "is also the name")
    assert problem.startswith("bank.yaml: tag twin: name '标签rich'") and "rich" in problem


def test_a_code_may_not_shadow_a_feature(tmp_path: Path) -> None:
    problem = _one(_problems(tmp_path, {"bank": [_tag("aum")]}), "feature's name")
    assert problem.startswith("bank.yaml: tag aum:")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("资产/规模", "three levels"),
        ("客户/规模/AUM", "level 1 '客户' is not in hierarchy.yaml"),
        ("资产/交易/AUM", "level 2 '交易' is not under '资产'"),
        ("资产/规模/理财", "level 3 '理财' is not under 资产/规模"),
    ],
)
def test_a_broken_hierarchy_path(tmp_path: Path, path: str, expected: str) -> None:
    problem = _one(_problems(tmp_path, {"bank": [_tag("rich", path=path)]}), expected)
    assert problem.startswith("bank.yaml: tag rich:")


def test_category_tags_need_their_values_and_keep_to_them(tmp_path: Path) -> None:
    files = {
        "bank": [
            _tag("tier_without_values", value_type="category", sql="'A'"),
            _tag(
                "tier",
                value_type="category",
                values=["高", "低"],
                sql="CASE WHEN aum > 1 THEN '高' WHEN aum > 0 THEN '中' ELSE '低' END",
            ),
        ]
    }
    problems = _problems(tmp_path, files)
    assert "allowed 'values'" in _one(problems, "tag tier_without_values:")
    assert "result '中' is not one of its values" in _one(problems, "tag tier:")


def test_dependency_cycles_are_named_with_their_path(tmp_path: Path) -> None:
    files = {
        "bank": [
            _tag("a_tag", sql="b_tag AND aum > 0"),
            _tag("b_tag", sql="c_tag"),
            _tag("c_tag", sql="a_tag OR txn_count_90d > 1"),
        ]
    }
    problem = _one(_problems(tmp_path, files), "dependency cycle")
    assert "a_tag → b_tag → c_tag → a_tag" in problem
    assert problem.startswith("bank.yaml: tag a_tag:")


def test_an_online_tag_may_not_read_a_draft_one(tmp_path: Path) -> None:
    files = {"bank": [_tag("draft_tag", status="draft"), _tag("live", sql="draft_tag")]}
    problem = _one(_problems(tmp_path, files), "which is draft")
    assert problem.startswith("bank.yaml: tag live:")


def test_builtin_problems(tmp_path: Path) -> None:
    files = {
        "bank": [
            _tag("unknown", sql=None, builtin={"name": "magic"}),
            _tag(
                "bad_params",
                sql=None,
                value_type="integer",
                builtin={"name": "quantile_score", "params": {"feature": "aum", "bins": 1}},
            ),
            _tag(
                "unknown_input",
                sql=None,
                value_type="integer",
                builtin={"name": "quantile_score", "params": {"feature": "wealth"}},
            ),
            _tag(
                "wrong_type",
                sql=None,
                builtin={"name": "quantile_score", "params": {"feature": "aum"}},
            ),
        ]
    }
    problems = _problems(tmp_path, files)
    assert "unknown builtin 'magic'" in _one(problems, "tag unknown:")
    assert "params.bins" in _one(problems, "tag bad_params:")
    assert "'wealth', which is neither a feature nor a tag" in _one(problems, "tag unknown_input:")
    assert "gives integer values" in _one(problems, "tag wrong_type:")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    files = {
        "bank": [_tag("aum"), _tag("rich", path="x/y/z")],
        "retail": [_tag("rich")],
    }
    problems = _problems(tmp_path, files)
    assert len(problems) >= 3
    assert {p.split(":")[0] for p in problems} == {"bank.yaml", "retail.yaml"}


def test_sql_that_does_not_parse_resolve_or_fit_is_named(
    spark: SparkSession, tmp_path: Path
) -> None:
    files = {
        "bank": [
            _tag("fine", sql="aum > 0 AND city = '北京'"),
            _tag("unparsable", sql="aum > > (0"),
            _tag("unknown_name", sql="wealth > 0"),
            _tag("not_boolean", sql="aum * 2"),
            _tag("reads_a_tag", value_type="integer", sql="CAST(fine AS INT) + age"),
        ]
    }
    registry = load_tag_registry(FEATURES, _conf(tmp_path, files))
    with pytest.raises(ConfigError) as caught:
        check_tag_sql(spark, registry)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert "PARSE_SYNTAX_ERROR" in _one(problems, "bank.yaml: tag unparsable:")
    assert "`wealth`" in _one(problems, "bank.yaml: tag unknown_name:")
    assert "gives double" in _one(problems, "bank.yaml: tag not_boolean:")


def test_the_shipped_registry_is_valid(spark: SparkSession) -> None:
    features = load_feature_config()
    registry = load_tag_registry(features.schema)
    check_tag_sql(spark, registry)
    online = registry.online()
    assert len(online) >= 120
    assert {t.definition.levels[0] for t in online} == set(registry.hierarchy)
    kinds = {t.definition.kind for t in online}
    assert {"fact", "rule", "statistic"} <= kinds
    for code in ("holiday_shopper", "stored_value_hoarder", "lifecycle_stage", "rfm_segment"):
        assert code in registry.by_code


def test_the_tag_dictionary_in_docs_is_current() -> None:
    """docs/tag_dictionary.md is what scripts/tag_dictionary.py gives for conf/tags/."""
    registry = load_tag_registry(load_feature_config().schema)
    path = Path(__file__).resolve().parents[2] / "docs" / "tag_dictionary.md"
    text = tag_dictionary_markdown(registry)
    assert path.read_text(encoding="utf-8") == text, "run scripts/tag_dictionary.py"
    assert text.count("- **") == len(registry.tags)
    for top in registry.hierarchy:
        assert f"\n## {top}\n" in text
