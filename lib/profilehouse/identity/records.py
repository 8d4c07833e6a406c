"""Identity records from silver tables: one row per record at its declared grain.

For every source of ``conf/identity.yaml`` this builds

- the record's identifiers as ``(record_id, source, kind, value)`` rows (nulls, blanks and
  placeholders dropped; values prefixed by their namespace, so equal tokens of different
  sources are one value);
- for person sources, the record's attributes (and the token columns whose normalised values
  come from the PII vault, resolved by :func:`with_vault_values`);
- the record list itself ``(record_id, source, role, updated_at)``.

``record_id`` is ``<source>|<key values joined by '|'>``: readable, stable across runs, and the
key stable master IDs are inherited by.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from profilehouse.identity.settings import IdentitySettings, RecordSource

RECORD_ID = "record_id"


def record_id_expr(name: str, source: RecordSource) -> Column:
    """``<source>|k1|k2…`` (a null key part is written as an empty string)."""
    parts = [F.coalesce(F.expr(k).cast("string"), F.lit("")) for k in source.key]
    return F.concat_ws("|", F.lit(name), *parts)


def identifier_values(
    silver: DataFrame, name: str, source: RecordSource, settings: IdentitySettings
) -> DataFrame:
    """Distinct ``(record_id, source, kind, value)`` of one source's records."""
    entries = []
    for kind, sql in source.identifiers.items():
        spec = settings.identifiers[kind]
        raw = F.trim(F.expr(sql).cast("string"))
        usable = raw.isNotNull() & (raw != "")
        if spec.placeholders:
            usable &= ~raw.isin(*spec.placeholders)
        value = F.concat(F.lit(f"{settings.namespace(kind)}:"), raw)
        entries.append(F.when(usable, F.struct(F.lit(kind).alias("kind"), value.alias("value"))))
    found = F.filter(F.array(*entries), lambda e: e.isNotNull())
    return (
        silver.select(record_id_expr(name, source).alias(RECORD_ID), F.explode(found).alias("i"))
        .select(RECORD_ID, F.lit(name).alias("source"), "i.kind", "i.value")
        .distinct()
    )


def record_list(silver: DataFrame, name: str, source: RecordSource) -> DataFrame:
    """``(record_id, source, role, updated_at, rows)``: one row per record of the source."""
    return (
        silver.select(
            record_id_expr(name, source).alias(RECORD_ID),
            F.expr(source.updated_at).cast("timestamp").alias("updated_at"),
        )
        .groupBy(RECORD_ID)
        .agg(F.max("updated_at").alias("updated_at"), F.count(F.lit(1)).alias("rows"))
        .select(
            RECORD_ID,
            F.lit(name).alias("source"),
            F.lit(source.role).alias("role"),
            "updated_at",
            "rows",
        )
    )


def person_attributes(silver: DataFrame, name: str, source: RecordSource) -> DataFrame:
    """One row per person record: record_id, source, updated_at, attributes, vault tokens
    (``__token_<attribute>``), the newest silver row winning when the grain is not unique."""
    columns = {a: F.expr(sql) for a, sql in source.attributes.items()}
    columns |= {vault_token_column(a): F.col(token) for a, token in source.vault_attributes.items()}
    rows = silver.select(
        record_id_expr(name, source).alias(RECORD_ID),
        F.lit(name).alias("source"),
        F.expr(source.updated_at).cast("timestamp").alias("updated_at"),
        *[c.alias(a) for a, c in columns.items()],
    )
    newest = Window.partitionBy(RECORD_ID).orderBy(F.col("updated_at").desc_nulls_last())
    return rows.withColumn("__n", F.row_number().over(newest)).where("__n = 1").drop("__n")


def with_vault_values(persons: DataFrame, vault: DataFrame, source: RecordSource) -> DataFrame:
    """Add each vault attribute's normalised value beside its ``__token_<attribute>`` column.

    The values exist only inside this computation (for comparisons); nothing derived from them
    but similarity levels and scores is written.
    """
    out = persons
    for attribute in source.vault_attributes:
        token = vault_token_column(attribute)
        values = vault.select(F.col("token").alias(token), F.col("value").alias(attribute))
        out = out.join(values, token, "left")
    return out


def vault_token_column(attribute: str) -> str:
    """The column holding the token of a vault attribute (kept beside its value)."""
    return f"__token_{attribute}"


def truth_keys(silver: DataFrame, name: str, source: RecordSource) -> DataFrame | None:
    """``(record_id, truth_source, truth_key)`` per silver row, for the quality report."""
    if source.truth is None:
        return None
    return silver.select(
        record_id_expr(name, source).alias(RECORD_ID),
        F.lit(source.truth.source).alias("truth_source"),
        F.expr(source.truth.record_key).cast("string").alias("truth_key"),
    )
