"""Clustering with noise guards on constructed cases: strong links, till mobiles, family
mobiles, attachment of satellite records, ambiguity, conflicting holders of a strong value,
too-large clusters, incremental phase 1 (real Spark)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from profilehouse.identity.graph import PreviousClusters, cluster_records, conflicting_values
from profilehouse.identity.settings import IdentitySettings

SETTINGS = IdentitySettings.model_validate(
    {
        "identifiers": {
            "cust_no": {"trust": "strong"},
            "member_id": {"trust": "strong"},
            "platform_user": {"trust": "strong"},
            "mobile": {"trust": "medium", "namespace": "token", "max_records": 3},
            "email": {"trust": "medium", "namespace": "token", "max_records": 3},
        },
        "records": {
            "customers": {
                "role": "person",
                "key": ["cust_no"],
                "identifiers": {"cust_no": "cust_no"},
                "attributes": {"name": "name"},
            },
        },
        "linkage": {
            "comparisons": [{"name": "name", "kind": "exact", "column": "name"}],
            "blocking": [["name"]],
        },
    }
)

RECORDS = [
    # person A: bank customer + retail member linked by a probabilistic match
    ("cust|A", "person"),
    ("member|A", "person"),
    # person B: a customer, and an account of B's
    ("cust|B", "person"),
    ("account|B1", "satellite"),
    # person C: a member sharing the family mobile F with B
    ("member|C", "person"),
    # satellites
    ("receipt|till1", "satellite"),
    ("receipt|till2", "satellite"),
    ("receipt|till3", "satellite"),
    ("receipt|till4", "satellite"),
    ("receipt|family", "satellite"),
    ("receipt|a_mobile", "satellite"),
    ("order|x1", "satellite"),
    ("order|x2", "satellite"),
    ("receipt|both", "satellite"),
]
IDENTIFIERS = [
    ("cust|A", "customers", "cust_no", "cust_no:A"),
    ("cust|A", "customers", "mobile", "token:mA"),
    ("member|A", "members", "member_id", "member_id:A"),
    ("cust|B", "customers", "cust_no", "cust_no:B"),
    ("cust|B", "customers", "mobile", "token:F"),
    ("cust|B", "customers", "email", "token:eB"),
    ("account|B1", "accounts", "cust_no", "cust_no:B"),
    ("account|B1", "accounts", "mobile", "token:mA"),  # anchored to B: never merges A and B
    ("member|C", "members", "member_id", "member_id:C"),
    ("member|C", "members", "mobile", "token:F"),
    # a store's default till mobile on four receipts (cap 3): noise
    *[(f"receipt|till{i}", "receipts", "mobile", "token:TILL") for i in range(1, 5)],
    ("receipt|family", "receipts", "mobile", "token:F"),
    ("receipt|a_mobile", "receipts", "mobile", "token:mA"),
    # an e-commerce buyer known to no person record: two orders, one platform user, one email
    ("order|x1", "orders", "platform_user", "platform_user:u1"),
    ("order|x1", "orders", "email", "token:eX"),
    ("order|x2", "orders", "platform_user", "platform_user:u1"),
    # a receipt with A's mobile and B's email: reaches two persons
    ("receipt|both", "receipts", "mobile", "token:mA"),
    ("receipt|both", "receipts", "email", "token:eB"),
]
MATCHES = [("cust|A", "member|A")]


@pytest.fixture(scope="module")
def clustering(spark: SparkSession):
    result = cluster_records(
        spark.createDataFrame(RECORDS, "record_id string, role string"),
        spark.createDataFrame(
            IDENTIFIERS, "record_id string, source string, kind string, value string"
        ),
        spark.createDataFrame(MATCHES, "record_id_l string, record_id_r string"),
        SETTINGS,
    )
    yield result
    result.unpersist()


def _cluster_of(clustering) -> dict[str, int]:
    return {r["record_id"]: r["cluster_id"] for r in clustering.clusters.collect()}


def _how(clustering) -> dict[str, str]:
    return {r["record_id"]: r["how"] for r in clustering.clusters.collect()}


def test_every_record_gets_exactly_one_cluster(clustering):
    ids = [r["record_id"] for r in clustering.clusters.collect()]
    assert sorted(ids) == sorted(r for r, _ in RECORDS)


def test_strong_identifiers_and_matches_link(clustering):
    c = _cluster_of(clustering)
    assert c["cust|A"] == c["member|A"]
    assert c["cust|B"] == c["account|B1"]


def test_persons_sharing_a_family_mobile_stay_apart(clustering):
    c = _cluster_of(clustering)
    assert len({c["cust|A"], c["cust|B"], c["member|C"]}) == 3


def test_till_mobile_is_noise_and_links_nothing(clustering):
    c = _cluster_of(clustering)
    assert len({c[f"receipt|till{i}"] for i in range(1, 5)}) == 4
    noise = {(r["value"], r["reason"]): r["records"] for r in clustering.noise.collect()}
    assert noise[("token:TILL", "max_records")] == 4


def test_family_mobile_is_reported_and_attaches_nothing(clustering):
    c, how = _cluster_of(clustering), _how(clustering)
    assert c["receipt|family"] not in {c["cust|B"], c["member|C"]}
    reasons = {(r["value"], r["reason"]) for r in clustering.noise.collect()}
    assert ("token:F", "shared_by_persons") in reasons
    assert how["receipt|family"] == "unattached"


def test_a_receipt_with_one_persons_mobile_attaches_to_that_person(clustering):
    c, how = _cluster_of(clustering), _how(clustering)
    assert c["receipt|a_mobile"] == c["cust|A"]
    assert how["receipt|a_mobile"] == "attached"


def test_anchored_satellite_keeps_its_strong_link(clustering):
    c = _cluster_of(clustering)
    assert c["account|B1"] == c["cust|B"] != c["cust|A"]


def test_unowned_buyer_orders_group_together(clustering):
    c = _cluster_of(clustering)
    assert c["order|x1"] == c["order|x2"]
    assert c["order|x1"] not in {c["cust|A"], c["cust|B"], c["member|C"]}


def test_a_record_reaching_two_persons_is_ambiguous_and_merges_nothing(clustering):
    c, how = _cluster_of(clustering), _how(clustering)
    assert how["receipt|both"] == "ambiguous_attachment"
    assert c["receipt|both"] not in {c["cust|A"], c["cust|B"]}
    assert c["cust|A"] != c["cust|B"]


def test_figures_count_clusters(clustering):
    c = _cluster_of(clustering)
    assert clustering.figures["clusters"] == len(set(c.values()))
    assert clustering.figures["anchored_clusters"] == 3


# --- over-merge guards: conflicting holders, too-large clusters -----------------------------

GUARDED = IdentitySettings.model_validate(
    {
        "identifiers": {
            "cust_no": {"trust": "strong"},
            "id_no": {"trust": "strong", "namespace": "token"},
            "device": {"trust": "strong", "namespace": "token"},
        },
        "records": {
            "customers": {
                "role": "person",
                "key": ["cust_no"],
                "identifiers": {"cust_no": "cust_no"},
                "attributes": {"name": "name", "birth_date": "birth_date"},
            },
        },
        "linkage": {
            "comparisons": [
                {"name": "name", "kind": "exact", "column": "name"},
                {"name": "birth_date", "kind": "exact", "column": "birth_date"},
            ],
            "blocking": [["name"]],
        },
        "clusters": {
            "max_person_records": 4,
            "split_match_threshold": 0.9999,
            "conflicting_persons": "gamma_name = 0 AND gamma_birth_date = 0",
        },
    }
)
PAIRS = "record_id_l string, record_id_r string, gamma_name int, gamma_birth_date int, "
PAIRS += "match_probability double"


def _guarded(spark, records, identifiers, scored, previous=None):
    records = spark.createDataFrame(records, "record_id string, role string")
    identifiers = spark.createDataFrame(
        identifiers, "record_id string, source string, kind string, value string"
    )
    scored = spark.createDataFrame(scored, PAIRS)
    matches = scored.where("match_probability >= 0.99")
    conflicts = conflicting_values(records, identifiers, scored, GUARDED)
    return cluster_records(
        records, identifiers, matches, GUARDED, previous=previous, conflicts=conflicts
    )


def test_a_strong_value_held_by_two_different_persons_links_nothing(spark):
    records = [(f"c|{i}", "person") for i in range(4)]
    identifiers = [(f"c|{i}", "customers", "cust_no", f"cust_no:{i}") for i in range(4)]
    identifiers += [
        ("c|0", "customers", "id_no", "token:ID1"),  # typed into another person's record
        ("c|1", "customers", "id_no", "token:ID1"),
        ("c|2", "customers", "id_no", "token:ID2"),  # the same person twice
        ("c|3", "customers", "id_no", "token:ID2"),
    ]
    scored = [("c|0", "c|1", 0, 0, 0.0001), ("c|3", "c|2", 2, 1, 0.5)]
    result = _guarded(spark, records, identifiers, scored)
    c = _cluster_of(result)
    assert c["c|0"] != c["c|1"]
    assert c["c|2"] == c["c|3"]
    reasons = {(r["value"], r["reason"]) for r in result.noise.collect()}
    assert ("token:ID1", "conflicting_holders") in reasons
    assert not any(value == "token:ID2" for value, _ in reasons)
    result.unpersist()


def _two_device_groups() -> tuple[list, list]:
    """Ten persons: p0-p4 share device D1, p5-p9 share device D2."""
    records = [(f"p|{i}", "person") for i in range(10)]
    identifiers = [(f"p|{i}", "customers", "cust_no", f"cust_no:{i}") for i in range(10)]
    identifiers += [(f"p|{i}", "customers", "device", "token:D1") for i in range(5)]
    identifiers += [(f"p|{i}", "customers", "device", "token:D2") for i in range(5, 10)]
    return records, identifiers


def test_a_too_large_cluster_splits_at_its_weak_match(spark):
    records, identifiers = _two_device_groups()
    scored = [("p|4", "p|5", 2, 2, 0.995)]  # a match, but not a sure one
    result = _guarded(spark, records, identifiers, scored)
    c = _cluster_of(result)
    assert len({c[f"p|{i}"] for i in range(5)}) == 1
    assert len({c[f"p|{i}"] for i in range(5, 10)}) == 1
    assert c["p|0"] != c["p|9"]
    assert result.figures["split_clusters"] == 1
    assert result.figures["most_person_records_in_a_cluster"] == 5
    result.unpersist()


def test_a_sure_match_holds_a_large_cluster_together_and_it_is_flagged(spark):
    records, identifiers = _two_device_groups()
    scored = [("p|4", "p|5", 2, 2, 0.99999)]
    result = _guarded(spark, records, identifiers, scored)
    assert len(set(_cluster_of(result).values())) == 1
    assert result.figures["most_person_records_in_a_cluster"] == 10
    result.unpersist()


def test_incremental_phase1_equals_a_full_run(spark):
    # before: a chain a0-a1-a2 (two devices), b0-b1 (match), c0 alone; d0-d1 (device)
    records = [(r, "person") for r in ("a0", "a1", "a2", "b0", "b1", "c0", "d0", "d1")]
    ids = [(r, "customers", "cust_no", f"cust_no:{r}") for r, _ in records]
    ids += [(r, "customers", "device", "token:A1") for r in ("a0", "a1")]
    ids += [(r, "customers", "device", "token:A2") for r in ("a1", "a2")]
    ids += [(r, "customers", "device", "token:D") for r in ("d0", "d1")]
    scored = [("b0", "b1", 2, 2, 0.999)]
    before = _guarded(spark, records, ids, scored)
    phase1 = before.phase1.localCheckpoint()
    before.unpersist()
    # after: a1 is gone (a0 and a2 lose their link), n0 is new and joins c0 (device) and b1
    # (match), d0 and d1 are unchanged
    records2 = [r for r in records if r[0] != "a1"] + [("n0", "person")]
    ids2 = [i for i in ids if i[0] != "a1"] + [
        ("n0", "customers", "cust_no", "cust_no:n0"),
        ("n0", "customers", "device", "token:C"),
        ("c0", "customers", "device", "token:C"),
    ]
    scored2 = [*scored, ("b1", "n0", 2, 2, 0.999)]
    # dirty: new, gone and changed records (c0's identifiers changed), ends of new matches
    dirty = spark.createDataFrame([("a1",), ("n0",), ("c0",), ("b1",)], "record_id string")
    full = _guarded(spark, records2, ids2, scored2)
    incremental = _guarded(spark, records2, ids2, scored2, PreviousClusters(phase1, dirty))
    assert sorted(full.phase1.collect()) == sorted(incremental.phase1.collect())
    c = _cluster_of(incremental)
    assert c["a0"] != c["a2"]
    assert c["n0"] == c["c0"] == c["b0"] == c["b1"]
    assert c["d0"] == c["d1"] != c["a0"]
    full.unpersist()
    incremental.unpersist()
