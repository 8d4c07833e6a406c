"""Clustering with noise guards on constructed cases: strong links, till mobiles, family
mobiles, attachment of satellite records, ambiguity (real Spark)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from profilehouse.identity.graph import cluster_records
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
