"""Blocking: which record pairs are compared at all.

A blocking rule is a list of Spark SQL expressions over one record; two records become a
candidate pair when every expression is non-null and equal on both. Rules are OR-ed: a pair
found by an earlier rule is not produced again by a later one, so each pair is compared once.
A block (one value of a rule's key) holding more than ``max_block_size`` records would cost
quadratic comparisons and says little (a default value, a very common name); it is skipped and
reported instead of compared. Comparisons per record therefore stay bounded as data grows.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.privacy.tokens import KEY_INNER, KEY_OUTER, hmac_token_from_keys

UID, DATASET = "uid", "dataset"
BLOCK_KEY_PURPOSE = "block_key"


def _key_expr(rule: Sequence[str]) -> Column:
    """One string key for a rule: null when any of its expressions is null or the key is empty."""
    parts = [F.expr(e).cast("string") for e in rule]
    # concat is null when any part is; the separator keeps ('ab','c') apart from ('a','bc')
    key = parts[0]
    for part in parts[1:]:
        key = F.concat(key, F.lit("\u241f"), part)
    return F.nullif(key, F.lit(""))


def block_keys(records: DataFrame, rules: Sequence[Sequence[str]], link_only: bool) -> DataFrame:
    """``(uid, [dataset,] rule, key)``: one row per record and rule whose key is not null."""
    keys = F.array(
        *[F.struct(F.lit(i).alias("rule"), _key_expr(r).alias("key")) for i, r in enumerate(rules)]
    )
    extra = [DATASET] if link_only else []
    return (
        records.select(UID, *extra, F.explode(keys).alias("k"))
        .where(F.col("k.key").isNotNull())
        .select(UID, *extra, "k.rule", "k.key")
    )


def oversize_blocks(keys: DataFrame, max_block_size: int) -> DataFrame:
    """``(rule, key, records)`` of every block larger than ``max_block_size``."""
    return (
        keys.groupBy("rule", "key")
        .agg(F.count(F.lit(1)).alias("records"))
        .where(F.col("records") > max_block_size)
    )


def tokenised_block_keys(frame: DataFrame, key_frame: DataFrame) -> DataFrame:
    """``frame`` with its ``key`` column replaced by the key's HMAC token (purpose 'block_key').

    A block key is made of clear values (a name and a birth date); an unkeyed hash of it could
    be reversed by hashing every name and date, so what is stored (``identity.oversize_blocks``)
    and compared across runs is the token. ``key_frame``: see
    :func:`profilehouse.privacy.tokens.token_key_frame`; its columns are dropped again.
    """
    return (
        frame.crossJoin(F.broadcast(key_frame))
        .withColumn("key", hmac_token_from_keys(F.col("key"), BLOCK_KEY_PURPOSE))
        .drop(KEY_INNER, KEY_OUTER)
    )


def candidate_pairs(
    records: DataFrame,
    rules: Sequence[Sequence[str]],
    max_block_size: int,
    link_only: bool = False,
    every_rule: bool = False,
    focus: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Candidate pairs ``(uid_l, uid_r, rule)`` with ``uid_l < uid_r``, and the oversize blocks.

    ``records`` needs a unique long ``uid`` and, when ``link_only``, a ``dataset`` column: only
    pairs from different datasets are produced (linking two files rather than deduplicating).
    A pair found by several rules appears once, with the first rule that found it (or once per
    rule with ``every_rule``, as training needs). One self-join over all rules' keys; block
    sizes bound its skew.
    """
    if not rules:
        raise ValueError("at least one blocking rule is needed")
    keys = block_keys(records, rules, link_only)
    oversize = oversize_blocks(keys, max_block_size)
    kept = keys.join(F.broadcast(oversize.select("rule", "key")), ["rule", "key"], "left_anti")
    if focus is not None:
        return _pairs_with_focus(kept, focus, link_only), oversize
    left, right = kept.alias("l"), kept.alias("r")
    condition = (
        (F.col("l.rule") == F.col("r.rule"))
        & (F.col("l.key") == F.col("r.key"))
        & (F.col(f"l.{UID}") < F.col(f"r.{UID}"))
    )
    if link_only:
        condition &= F.col(f"l.{DATASET}") != F.col(f"r.{DATASET}")
    found = left.join(right, condition).select(
        F.col(f"l.{UID}").alias("uid_l"), F.col(f"r.{UID}").alias("uid_r"), F.col("l.rule")
    )
    if every_rule:
        return found, oversize
    pairs = found.groupBy("uid_l", "uid_r").agg(F.min("rule").alias("rule"))
    return pairs, oversize


def _pairs_with_focus(kept: DataFrame, focus: DataFrame, link_only: bool) -> DataFrame:
    """Pairs (first rule each) of the kept block keys with at least one record in ``focus``."""
    focused = kept.join(focus.select(UID).distinct(), UID, "left_semi")
    left, right = focused.alias("l"), kept.alias("r")
    condition = (
        (F.col("l.rule") == F.col("r.rule"))
        & (F.col("l.key") == F.col("r.key"))
        & (F.col(f"l.{UID}") != F.col(f"r.{UID}"))
    )
    if link_only:
        condition &= F.col(f"l.{DATASET}") != F.col(f"r.{DATASET}")
    found = left.join(right, condition).select(
        F.least(f"l.{UID}", f"r.{UID}").alias("uid_l"),
        F.greatest(f"l.{UID}", f"r.{UID}").alias("uid_r"),
        F.col("l.rule"),
    )
    return found.groupBy("uid_l", "uid_r").agg(F.min("rule").alias("rule"))
