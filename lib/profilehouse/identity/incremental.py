"""Incremental identity runs: what changed since the last run, and only what it touches re-done.

A daily batch adds or changes a small share of the records. An incremental run

1. finds the **changed** records: new, gone, or with other identifiers or attributes than the
   last run saw (a fingerprint per record, :func:`record_fingerprints`);
2. re-scores only the candidate pairs with an **affected** person record — a changed one, or
   one in a block that crossed the block-size cap — with the stored model and term frequencies;
   every other pair keeps its stored score, which is what a full scoring would give it
   (:func:`rescored_pairs`);
3. marks as **dirty** the records whose links may have changed (changed records, holders of
   values whose noise status changed, ends of matches that appeared, vanished or were
   re-scored), so clustering re-links only their clusters
   (:class:`~profilehouse.identity.graph.PreviousClusters`).

With the same model, the result equals a full run's (``mode="rescore"``); only training is
left to full runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from profilehouse.identity import linker
from profilehouse.identity.blocking import (
    UID,
    block_keys,
    oversize_blocks,
    tokenised_block_keys,
)
from profilehouse.identity.fellegi_sunter import FellegiSunterModel
from profilehouse.identity.graph import node_id_expr
from profilehouse.identity.records import RECORD_ID

FINGERPRINT = "fingerprint"
_NOT_ATTRIBUTES = {RECORD_ID, "source", "updated_at", UID}


def record_fingerprints(identifiers: DataFrame, persons: DataFrame | None) -> DataFrame:
    """``(record_id, fingerprint)``: a hash of the record's identifier values and, for person
    records, of its attributes (tokens and masks, not the vault values)."""
    ids = identifiers.groupBy(RECORD_ID).agg(
        F.array_sort(F.collect_set(F.concat_ws("=", "kind", "value"))).alias("__ids")
    )
    if persons is None:
        return ids.select(RECORD_ID, F.xxhash64("__ids").alias(FINGERPRINT))
    attributes = sorted(c for c in persons.columns if c not in _NOT_ATTRIBUTES)
    attrs = persons.select(RECORD_ID, F.xxhash64(*attributes).alias("__attrs"))
    return ids.join(attrs, RECORD_ID, "full").select(
        RECORD_ID, F.xxhash64("__ids", "__attrs").alias(FINGERPRINT)
    )


def changed_records(current: DataFrame, previous: DataFrame) -> DataFrame:
    """``(record_id)`` of records new, gone or with another fingerprint than before."""
    cur = current.select(RECORD_ID, F.col(FINGERPRINT).alias("__now"))
    prev = previous.select(RECORD_ID, F.col(FINGERPRINT).alias("__before"))
    return (
        cur.join(prev, RECORD_ID, "full")
        .where(~F.col("__now").eqNullSafe(F.col("__before")))
        .select(RECORD_ID)
    )


def flipped_noise(current: DataFrame, previous: DataFrame) -> DataFrame:
    """``(value)`` of identifier values noisy now and not before, or the other way round."""
    now, before = current.select("value").distinct(), previous.select("value").distinct()
    return now.exceptAll(before).unionByName(before.exceptAll(now))


@dataclass(frozen=True)
class LinkageState:
    """What the last run's linkage left: its scored pairs (with record IDs), oversize blocks,
    and the model and term frequencies they were scored with."""

    scored: DataFrame
    oversize: DataFrame
    model: FellegiSunterModel
    term_frequencies: dict[str, DataFrame]


@dataclass(frozen=True)
class Rescoring:
    """Result of :func:`rescored_pairs`."""

    scored: DataFrame  # every candidate pair, as a full scoring gives it
    oversize: DataFrame  # the blocks skipped now
    new_pairs: DataFrame  # the re-scored ones
    dirty: DataFrame  # record_id: ends of matches that appeared, vanished or were re-scored


def rescored_pairs(
    keyed: DataFrame,
    changed: DataFrame,
    previous: LinkageState,
    settings: linker.LinkageSettings,
    name_pairs: Callable[[DataFrame], DataFrame],
    key_frame: DataFrame,
    stage: Callable[[DataFrame], DataFrame] = lambda df: df,
) -> Rescoring:
    """Re-score the pairs of affected person records; keep the others' stored scores.

    ``keyed``: the person records now (with ``uid``); ``changed``: ``(record_id)``;
    ``name_pairs``: adds ``record_id_l/_r`` to scored ``uid`` pairs (as the stage stores them);
    ``key_frame``: the token key (the stored oversize blocks hold tokens of their keys);
    ``stage``: stores the re-scored pairs and reads them back (so they are computed once).
    The returned ``oversize`` holds clear keys, as :func:`linker.score_pairs` returns them.
    """
    prepared = linker.prepared_records(keyed, settings, previous.term_frequencies)
    keys = block_keys(prepared, settings.blocking, link_only=False)
    oversize = oversize_blocks(keys, settings.max_block_size)
    # the stored blocks hold tokens of their keys (see tokenised_block_keys)
    now = tokenised_block_keys(oversize.select("rule", "key"), key_frame)
    before = previous.oversize.select("rule", "key")
    flipped = now.exceptAll(before).unionByName(before.exceptAll(now))
    stored_keys = tokenised_block_keys(keys.select(UID, "rule", "key"), key_frame)
    affected = (
        changed.select(node_id_expr(F.col(RECORD_ID)).alias(UID))
        .unionByName(stored_keys.join(flipped, ["rule", "key"], "left_semi").select(UID))
        .distinct()
    )
    new, _ = linker.score_pairs(
        keyed,
        settings,
        previous.model,
        focus=affected,
        term_frequencies=previous.term_frequencies,
    )
    new = stage(name_pairs(new))
    old = previous.scored
    touching = old.join(affected.withColumnRenamed(UID, "uid_l"), "uid_l", "left_semi").unionByName(
        old.join(affected.withColumnRenamed(UID, "uid_r"), "uid_r", "left_semi")
    )
    kept = old.join(touching.select("uid_l", "uid_r"), ["uid_l", "uid_r"], "left_anti")
    threshold = F.col("match_probability") >= settings.match_threshold
    matched_ends = touching.where(threshold).unionByName(new.where(threshold))
    dirty = (
        matched_ends.select(F.col("record_id_l").alias(RECORD_ID))
        .unionByName(matched_ends.select(F.col("record_id_r").alias(RECORD_ID)))
        .distinct()
    )
    return Rescoring(kept.unionByName(new.select(*old.columns)), oversize, new, dirty)
