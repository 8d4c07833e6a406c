"""Identity quality against a ground truth (demo and test runs): pairwise precision, recall, ...

A production run has no ground truth: :func:`no_truth_report` says so instead.

Each identity record's true person is the most frequent person among its silver rows' truth
records (a POS receipt's lines all belong to one shopper). Pair counts come from group sizes —
``Σ C(n, 2)`` over clusters, over true persons and over (cluster, person) cells — so no pair is
ever enumerated, whatever the number of records.

- precision = same-person pairs in the same cluster / pairs in the same cluster;
- recall = same-person pairs in the same cluster / same-person pairs;
- blocking recall = same-person pairs of *person* records that reached comparison (a candidate
  pair, or sharing a strong identifier) / same-person pairs of person records;
- over-merged clusters hold records of several persons; split persons span several clusters;
- the same figures over the records *with evidence*: person records and records sharing an
  identifier value with another record (a device seen once links to nothing, whoever owns it).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from profilehouse.identity.records import RECORD_ID
from profilehouse.privacy.tokens import KEY_INNER, KEY_OUTER, hmac_token_from_keys
from profilehouse.truth import read_truth_records


def _pairs(n: F.Column) -> F.Column:
    return n * (n - 1) / 2


def record_persons(truths: DataFrame, truth_records: DataFrame) -> DataFrame:
    """``(record_id, person_id)``: each record's most frequent true person."""
    joined = truths.join(
        truth_records.select(
            F.col("source").alias("truth_source"),
            F.col("record_key").alias("truth_key"),
            "person_id",
        ),
        ["truth_source", "truth_key"],
    )
    counts = joined.groupBy(RECORD_ID, "person_id").count()
    top = Window.partitionBy(RECORD_ID).orderBy(F.desc("count"), "person_id")
    return (
        counts.withColumn("n", F.row_number().over(top))
        .where("n = 1")
        .select(RECORD_ID, "person_id")
    )


def tokenised_truth_keys(
    truth_records: DataFrame, purposes: dict[str, str], key_frame: DataFrame | None
) -> DataFrame:
    """``truth_records`` with the ``record_key`` of each source in ``purposes`` replaced by its
    HMAC token under that purpose, as silver tokenised the key column (an account number): the
    ground truth holds clear keys, silver and the identity records only tokens."""
    if key_frame is None:
        raise ValueError("tokenising the ground truth's record keys needs the token key frame")
    purpose = F.try_element_at(
        F.create_map(*[F.lit(x) for kv in purposes.items() for x in kv]), F.col("source")
    )
    token = hmac_token_from_keys(F.trim(F.col("record_key").cast("string")), purpose)
    return (
        truth_records.crossJoin(F.broadcast(key_frame))
        .withColumn("record_key", F.when(purpose.isNotNull(), token).otherwise(F.col("record_key")))
        .drop(KEY_INNER, KEY_OUTER)
    )


def pairwise_metrics(labelled: DataFrame) -> dict:
    """Precision, recall, F1 and cluster counts of ``(record_id, master_id, person_id)``."""
    cells = labelled.groupBy("master_id", "person_id").count()
    true_pos = cells.select(F.sum(_pairs(F.col("count")))).first()[0] or 0
    clusters = labelled.groupBy("master_id").count()
    persons = labelled.groupBy("person_id").count()
    predicted = clusters.select(F.sum(_pairs(F.col("count")))).first()[0] or 0
    actual = persons.select(F.sum(_pairs(F.col("count")))).first()[0] or 0
    precision = true_pos / predicted if predicted else 1.0
    recall = true_pos / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_cluster = cells.groupBy("master_id").agg(F.count("person_id").alias("persons"))
    per_person = cells.groupBy("person_id").agg(F.count("master_id").alias("clusters"))
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "evaluated_records": labelled.count(),
        "true_persons": persons.count(),
        "evaluated_clusters": clusters.count(),
        "largest_evaluated_cluster": clusters.agg(F.max("count")).first()[0] or 0,
        "over_merged_clusters": per_cluster.where("persons > 1").count(),
        "split_persons": per_person.where("clusters > 1").count(),
    }


def blocking_recall(
    persons: DataFrame,
    candidates: DataFrame,
    identifiers: DataFrame,
    truth: DataFrame,
    strong_kinds: list[str],
) -> float:
    """Share of same-person pairs of person records that were compared or share a strong id."""
    labelled = persons.join(truth, RECORD_ID)
    true_pairs = (
        labelled.alias("a")
        .join(labelled.alias("b"), "person_id")
        .where(F.col(f"a.{RECORD_ID}") < F.col(f"b.{RECORD_ID}"))
        .select(F.col(f"a.{RECORD_ID}").alias("l"), F.col(f"b.{RECORD_ID}").alias("r"))
    )
    ordered = candidates.select(
        F.least("record_id_l", "record_id_r").alias("l"),
        F.greatest("record_id_l", "record_id_r").alias("r"),
    )
    held = identifiers.where(F.col("kind").isin(*strong_kinds)).join(persons, RECORD_ID)
    shared = (
        held.alias("a")
        .join(held.alias("b"), "value")
        .where(F.col(f"a.{RECORD_ID}") < F.col(f"b.{RECORD_ID}"))
        .select(F.col(f"a.{RECORD_ID}").alias("l"), F.col(f"b.{RECORD_ID}").alias("r"))
    )
    reached = ordered.unionByName(shared).distinct()
    total = true_pairs.count()
    found = true_pairs.join(reached, ["l", "r"]).count()
    return round(found / total, 5) if total else 1.0


def recall_ceiling(labelled: DataFrame, evidenced: DataFrame) -> float:
    """The recall a resolver could reach if it linked every record with evidence to its person
    and left the others alone: same-person pairs among evidenced records / all of them."""
    flags = evidenced.select(RECORD_ID).withColumn("__e", F.lit(1))
    per_person = (
        labelled.join(flags, RECORD_ID, "left")
        .groupBy("person_id")
        .agg(F.count(F.lit(1)).alias("n"), F.count("__e").alias("e"))
    )
    row = per_person.agg(
        F.sum(_pairs(F.col("n"))).alias("all"), F.sum(_pairs(F.col("e"))).alias("linkable")
    ).first()
    return round(row["linkable"] / row["all"], 5) if row["all"] else 1.0


def _with_evidence(identifiers: DataFrame, persons: DataFrame) -> DataFrame:
    """``(record_id)`` of person records and of records sharing a value with another record."""
    holders = identifiers.groupBy("value").agg(F.countDistinct(RECORD_ID).alias("holders"))
    shared = identifiers.join(holders.where("holders > 1"), "value", "left_semi")
    return shared.select(RECORD_ID).unionByName(persons.select(RECORD_ID)).distinct()


def evaluate(
    spark: SparkSession,
    members: DataFrame,
    truths: DataFrame,
    truth_uri: str,
    candidates: DataFrame,
    identifiers: DataFrame,
    persons: DataFrame,
    strong_kinds: list[str],
    truth_purposes: dict[str, str] | None = None,
    key_frame: DataFrame | None = None,
) -> dict:
    """The quality report of one run (see the module docstring).

    ``truth_purposes``: truth source → token purpose, for sources keyed by a PII column (see
    :func:`tokenised_truth_keys`); needs ``key_frame`` (the run's token key).
    """
    truth_records = read_truth_records(spark, truth_uri)
    if truth_purposes:
        truth_records = tokenised_truth_keys(truth_records, truth_purposes, key_frame)
    truth = record_persons(truths, truth_records).cache()
    labelled = members.join(truth, RECORD_ID)
    # records whose only identifiers were noise (a receipt with just a till's default mobile)
    # carry no evidence of who they are: counted, not scored
    report = pairwise_metrics(labelled.where(F.col("how") != "unlinkable"))
    report["unlinkable_records"] = labelled.where(F.col("how") == "unlinkable").count()
    persons_only = pairwise_metrics(labelled.where(F.col("role") == "person"))
    report["person_records"] = {
        k: persons_only[k] for k in ("precision", "recall", "f1", "over_merged_clusters")
    }
    # records holding no value any other record holds (a device seen once) cannot be linked
    # by anything: the recall over the rest says how much of the evidence the resolver used
    evidenced = labelled.join(_with_evidence(identifiers, persons), RECORD_ID, "left_semi")
    with_evidence = pairwise_metrics(evidenced.where(F.col("how") != "unlinkable"))
    report["with_evidence"] = {k: with_evidence[k] for k in ("precision", "recall", "f1")}
    report["records_without_evidence"] = (
        report["evaluated_records"] - with_evidence["evaluated_records"]
    )
    linkable = labelled.where(F.col("how") != "unlinkable")
    report["recall_ceiling"] = recall_ceiling(linkable, evidenced)
    report["blocking_recall"] = blocking_recall(
        persons, candidates, identifiers, truth, strong_kinds
    )
    truth.unpersist()
    return report


NO_TRUTH_LINE = "  identity quality: no ground truth (production run)"


def no_truth_report() -> dict:
    """The quality figures of a run without a ground truth: only that there is none."""
    return {"ground_truth": "none"}


def format_report(report: dict) -> str:
    """Readable lines for the demo summary (one line when there was no ground truth)."""
    if report.get("ground_truth") == "none":
        return NO_TRUTH_LINE
    p, e = report["person_records"], report["with_evidence"]
    return (
        f"  identity quality: precision {report['precision']:.4f}, recall {report['recall']:.4f},"
        f" F1 {report['f1']:.4f}, blocking recall {report['blocking_recall']:.4f}; "
        f"{report['evaluated_clusters']:,} clusters "
        f"(largest {report['largest_evaluated_cluster']:,}) for "
        f"{report['true_persons']:,} true persons; {report['over_merged_clusters']:,} over-merged,"
        f" {report['split_persons']:,} split; {report['unlinkable_records']:,} unlinkable\n"
        f"  person records only: precision {p['precision']:.4f}, recall {p['recall']:.4f}, "
        f"F1 {p['f1']:.4f}\n"
        f"  records with evidence (sharing a value with another record, or persons): "
        f"precision {e['precision']:.4f}, recall {e['recall']:.4f}, F1 {e['f1']:.4f}; "
        f"{report['records_without_evidence']:,} records without any (recall ceiling "
        f"{report['recall_ceiling']:.4f})"
    )
