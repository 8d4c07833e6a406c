"""The tag data dictionary for business users: every tag of the registry, bilingual, grouped by
its hierarchy (一级 / 二级 / 三级), with its definition (口径), values, refresh and owner.

``scripts/tag_dictionary.py`` writes it to ``docs/tag_dictionary.md``; a test keeps that file
equal to what the registry gives, so the dictionary never drifts from the definitions.
"""

from __future__ import annotations

from profilehouse.gold.tag_registry import Tag, TagRegistry

KIND_NAMES = {
    "fact": "事实 fact",
    "rule": "规则 rule",
    "statistic": "统计 statistic",
    "model": "模型 model",
}


def tag_dictionary_markdown(registry: TagRegistry) -> str:
    """The dictionary as Markdown (deterministic: same registry, same text)."""
    online = [t for t in registry.tags if t.definition.status != "retired"]
    lines = [
        "# 标签字典 Tag dictionary",
        "",
        "Generated from `conf/tags/` by `scripts/tag_dictionary.py`; do not edit by hand.",
        f"{len(online)} tags ({sum(t.online for t in online)} online) in "
        f"{len(registry.hierarchy)} top-level categories. Each tag has one definition (口径统一): "
        "the Spark SQL (or builtin) below is exactly what the gold stage computes.",
        "",
        "Column names in `gold.customer_tags` are the tag codes; `gold.tag_values` holds the "
        "same values as text, one row per customer and tag.",
        "",
    ]
    by_path: dict[tuple[str, ...], list[Tag]] = {}
    for tag in online:
        by_path.setdefault(tuple(tag.definition.levels), []).append(tag)
    for top, middles in registry.hierarchy.items():
        lines += [f"## {top}", ""]
        for middle, leaves in middles.items():
            lines += [f"### {top} / {middle}", ""]
            for leaf in leaves:
                tags = sorted(by_path.get((top, middle, leaf), []), key=lambda t: t.code)
                if not tags:
                    continue
                lines += [f"#### {leaf}", ""]
                for tag in tags:
                    lines += _tag_entry(tag)
    return "\n".join(lines).rstrip() + "\n"


def _tag_entry(tag: Tag) -> list[str]:
    d = tag.definition
    values = ", ".join(d.values) if d.values else d.value_type
    if d.range is not None:
        values += f" in [{d.range[0]:g}, {d.range[1]:g}]"
    if d.builtin is not None:
        params = ", ".join(f"{k}={v}" for k, v in sorted(d.builtin.params.items()))
        definition = f"builtin `{d.builtin.name}`({params})"
    else:
        definition = f"`{' '.join((d.sql or '').split())}`"
    status = "" if d.status == "online" else f" — **{d.status}**"
    return [
        f"- **{d.name.zh}** / {d.name.en} — `{tag.code}`{status}",
        f"  - {d.description.strip()}",
        f"  - values: {values}; kind: {KIND_NAMES[d.kind]}; refresh: {d.refresh}; "
        f"version {d.version}; owner: {tag.owner}",
        f"  - definition: {definition}",
        "",
    ]
