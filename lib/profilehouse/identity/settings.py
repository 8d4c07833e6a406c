"""Typed identity-resolution settings (``conf/identity.yaml``), validated at load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from profilehouse.config import StrictModel, conf_path, load_model
from profilehouse.identity.golden import SurvivorshipRule
from profilehouse.identity.linker import LinkageSettings

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class IdentifierKind(StrictModel):
    """One kind of identifier: how far it is trusted and when a value is noise."""

    trust: Literal["strong", "medium"] = Field(
        description="strong: two records holding the value are the same person; medium: only "
        "when the value is not held by persons of several clusters (family mobiles)."
    )
    namespace: str | None = Field(
        default=None,
        description="Kinds sharing a namespace compare values across kinds (PII tokens are "
        "kind-salted HMACs, unique across kinds, so they share 'token'); default: the kind.",
    )
    max_records: int = Field(
        default=1000, ge=2, description="A value held by more records of one source is noise."
    )
    placeholders: list[str] = Field(
        default_factory=list, description="Values that never link (e.g. '0', 'UNKNOWN')."
    )
    description: str = ""


class TruthMapping(StrictModel):
    """How a record maps to the generator's ground truth (for the quality report only)."""

    source: str = Field(description="Ground-truth source name, e.g. bank.customers.")
    record_key: str = Field(description="Spark SQL over the silver row giving its truth key.")
    tokenised_as: str | None = Field(
        default=None,
        description="When record_key is a PII key's token column (silver holds no clear value): "
        "the token purpose (its PII kind); the report tokenises the truth file's clear keys "
        "with the run's token key to match.",
    )


class RecordSource(StrictModel):
    """One silver table contributing identity records."""

    role: Literal["person", "satellite"]
    key: list[str] = Field(min_length=1, description="Spark SQL expressions: the record grain.")
    identifiers: dict[str, str] = Field(
        min_length=1, description="Identifier kind → Spark SQL giving the value (null: none)."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="person: attribute → Spark SQL (compared, survived)."
    )
    vault_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="person: attribute → token column whose normalised value (from the PII "
        "vault) is compared; the value is used in memory only, never written.",
    )
    updated_at: str = Field(
        default="_ingested_at", description="Spark SQL: when the record was last updated."
    )
    truth: TruthMapping | None = None

    @model_validator(mode="after")
    def _persons_have_attributes(self) -> RecordSource:
        if self.role == "person" and not (self.attributes or self.vault_attributes):
            raise ValueError("a person source needs attributes to compare")
        if self.role == "satellite" and (self.attributes or self.vault_attributes):
            raise ValueError("a satellite source has identifiers only, not attributes")
        return self


class ClusterSettings(StrictModel):
    max_person_records: int = Field(
        default=8,
        ge=2,
        description="A cluster with more person records is split by the stronger evidence "
        "(strong identifiers and matches from split_match_threshold); still larger, flagged.",
    )
    split_match_threshold: float = Field(
        default=0.9999,
        gt=0,
        le=1,
        description="Match probability a match needs to hold a too-large cluster together.",
    )
    conflicting_persons: str | None = Field(
        default=None,
        description="Spark SQL over a scored pair's levels (gamma_<comparison>) meaning 'two "
        "different persons'; a strong identifier value held by such a pair of person records "
        "links nothing and is reported (reason conflicting_holders).",
    )
    checkpoint_every: int = Field(default=2, ge=1)


class IdentitySettings(StrictModel):
    """The whole of ``conf/identity.yaml``."""

    identifiers: dict[str, IdentifierKind] = Field(min_length=1)
    records: dict[str, RecordSource] = Field(min_length=1)
    linkage: LinkageSettings
    clusters: ClusterSettings = ClusterSettings()
    linkage_retrain_after_days: int = Field(
        default=7,
        ge=0,
        description="Mode auto runs incrementally until the model is this old, then trains anew.",
    )
    golden_record: dict[str, SurvivorshipRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_resolve(self) -> IdentitySettings:
        problems = []
        for kind in self.identifiers:
            if not _NAME.match(kind):
                problems.append(f"identifiers.{kind}: kind must be a lower-case identifier")
        for name, source in self.records.items():
            unknown = sorted(set(source.identifiers) - set(self.identifiers))
            if unknown:
                problems.append(
                    f"records.{name}.identifiers: unknown kind(s) {', '.join(unknown)} "
                    f"(declared: {', '.join(sorted(self.identifiers))})"
                )
        persons = {n: s for n, s in self.records.items() if s.role == "person"}
        if not persons:
            problems.append("records: at least one source needs role 'person'")
        needed = set(self.linkage.attribute_columns()) - set(self.linkage.derived)
        for name, source in persons.items():
            have = set(source.attributes) | set(source.vault_attributes)
            missing = sorted(needed - have)
            if missing:
                problems.append(
                    f"records.{name}: attribute(s) {', '.join(missing)} compared by "
                    "linkage.comparisons are not declared"
                )
        conflict = self.clusters.conflicting_persons or ""
        compared = {c.name for c in self.linkage.comparisons}
        unknown_levels = sorted(set(re.findall(r"gamma_(\w+)", conflict)) - compared)
        if unknown_levels:
            problems.append(
                f"clusters.conflicting_persons: no comparison named {', '.join(unknown_levels)} "
                f"(compared: {', '.join(sorted(compared))})"
            )
        # vault attributes are raw PII: they never reach the golden record
        person_attributes = set.intersection(
            *[set(s.attributes) for s in persons.values()] or [set()]
        )
        for attribute in self.golden_record:
            if attribute not in person_attributes:
                problems.append(
                    f"golden_record.{attribute}: not a (non-vault) attribute of every person "
                    f"source (common attributes: {', '.join(sorted(person_attributes))})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def namespace(self, kind: str) -> str:
        return self.identifiers[kind].namespace or kind

    def person_sources(self) -> dict[str, RecordSource]:
        return {n: s for n, s in self.records.items() if s.role == "person"}


def load_identity_settings(conf_dir: str | Path | None = None) -> IdentitySettings:
    """Load and validate ``identity.yaml``; raises ConfigError listing every problem."""
    return load_model(conf_path("identity.yaml", conf_dir), IdentitySettings)
