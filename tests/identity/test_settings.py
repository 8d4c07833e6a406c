"""conf/identity.yaml validation: every problem reported at once, naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from profilehouse.config import DEFAULT_CONF_DIR, parse_model
from profilehouse.errors import ConfigError
from profilehouse.identity.settings import IdentitySettings


def _shipped() -> dict:
    return yaml.safe_load((DEFAULT_CONF_DIR / "identity.yaml").read_text(encoding="utf-8"))


def test_shipped_identity_settings_load():
    settings = parse_model(_shipped(), IdentitySettings, source="identity.yaml")
    assert settings.person_sources()
    assert settings.namespace("mobile") == settings.namespace("openid") == "token"
    assert settings.namespace("cust_no") == "cust_no"


@pytest.mark.parametrize(
    ("description", "edit", "expected"),
    [
        (
            "unknown identifier kind",
            lambda d: d["records"]["bank_loans"]["identifiers"].update({"passport": "x"}),
            "records.bank_loans.identifiers: unknown kind(s) passport",
        ),
        (
            "compared attribute missing on a person source",
            lambda d: d["records"]["retail_members"]["attributes"].pop("city"),
            "records.retail_members: attribute(s) city compared by linkage.comparisons are not "
            "declared",
        ),
        (
            "raw PII in the golden record",
            lambda d: d["golden_record"].update({"name_value": {"strategy": "most_recent"}}),
            "golden_record.name_value: not a (non-vault) attribute of every person source",
        ),
        (
            "satellite with attributes",
            lambda d: d["records"]["bank_loans"].update({"attributes": {"x": "y"}}),
            "a satellite source has identifiers only, not attributes",
        ),
        (
            "bad trust level",
            lambda d: d["identifiers"]["mobile"].update({"trust": "high"}),
            "identifiers.mobile.trust: Input should be 'strong' or 'medium'",
        ),
    ],
)
def test_invalid_identity_settings_name_the_key(description, edit, expected):
    data = copy.deepcopy(_shipped())
    edit(data)
    with pytest.raises(ConfigError) as err:
        parse_model(data, IdentitySettings, source="identity.yaml")
    assert expected in str(err.value), description
