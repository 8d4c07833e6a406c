"""Typed generator settings, loaded from ``conf/generator.yaml``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from profilehouse.config import StrictModel, conf_path, load_model
from profilehouse.generator.vocab import PERSONAS

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class History(StrictModel):
    start: dt.date
    end: dt.date
    daily_batches: int = Field(ge=0, le=30, description="Trailing days delivered one batch each.")

    @model_validator(mode="after")
    def _ordered(self) -> History:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if (self.end - self.start).days < 90 + self.daily_batches:
            raise ValueError("history must span at least 90 days plus the daily batches")
        return self

    @property
    def initial_batch(self) -> dt.date:
        """Date of the full-history batch: everything up to the first daily batch."""
        return self.end - dt.timedelta(days=self.daily_batches)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


class Persona(StrictModel):
    """Behaviour of one hidden persona (all means are per person)."""

    weight: Positive
    age_mean: Annotated[float, Field(ge=18, le=80)]
    bank_rate: Rate
    retail_rate: Rate
    app_rate: Rate = Field(description="Share of bank customers using the mobile app.")
    txn_per_month: NonNegative
    txn_amount: Positive = Field(description="Typical card/transfer amount (CNY).")
    salary: NonNegative = Field(description="Monthly salary (0 = no salary credits).")
    balance: Positive = Field(description="Typical current-account balance (CNY).")
    time_deposit_rate: Rate
    wealth_rate: Rate
    credit_card_rate: Rate
    loan_rate: Rate = Field(description="Probability of a loan application in the window.")
    app_sessions_per_month: NonNegative
    receipts_per_month: NonNegative
    basket_value: Positive
    festival_share: Rate = Field(description="Share of shopping concentrated at festivals.")
    coupon_rate: Rate
    ecom_rate: Rate
    ecom_orders_per_month: NonNegative
    web_sessions_per_month: NonNegative
    cart_rate: Rate = Field(description="Probability a browsing session adds to cart/favourite.")
    checkout_rate: Rate = Field(description="Probability a cart session checks out.")
    stored_value_rate: Rate


class Dirt(StrictModel):
    """Rates of each dirty-data pattern (probability per record or per field)."""

    name_typo: Rate
    name_traditional: Rate
    name_spacing: Rate
    mobile_formatted: Rate
    email_upper: Rate
    birth_swapped: Rate
    stale_address: Rate
    missing_field: Rate
    duplicate_record: Rate
    family_mobile: Rate
    default_till_mobile: Rate
    invalid_id_check: Rate
    bad_date: Rate
    negative_quantity: Rate
    malformed_row: Rate
    duplicate_event: Rate
    late_event: Rate
    corrected_redelivery: Rate


class Signal(StrictModel):
    """Planted effects with known truth."""

    churn_rate: Rate
    loan_lead_days: int = Field(ge=14, le=365)
    salary_rise: Annotated[float, Field(ge=1.0, le=3.0)]
    balance_rise: Annotated[float, Field(ge=1.0, le=5.0)]
    calculator_views: NonNegative
    cart_coupon_share: Rate
    cart_conversion_base: Rate
    cart_conversion_coupon: Rate
    stored_value_hoarder_rate: Rate


class Campaign(StrictModel):
    campaign_id: str = Field(pattern=r"^[A-Z0-9_]+$")
    name: str
    objective: Literal[
        "DEPOSIT_TO_LOAN",
        "CART_RECOVERY",
        "WINBACK",
        "WEALTH_CROSS_SELL",
        "FESTIVAL_PROMO",
        "CARD_ACTIVATION",
    ]
    channel: Literal["SMS", "APP_PUSH", "WECHAT", "EMAIL", "CALL"]
    start_date: dt.date
    end_date: dt.date
    audience: Literal["bank", "retail"]
    target_key: Literal["cust_no", "member_id", "mobile"]
    target_rate: Rate
    control_share: Rate
    base_conversion: Rate
    uplift: Annotated[float, Field(ge=-0.5, le=0.5)]

    @model_validator(mode="after")
    def _dates(self) -> Campaign:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date ({self.end_date}) is before start_date ({self.start_date})")
        if self.audience == "bank" and self.target_key == "member_id":
            raise ValueError("a bank campaign cannot target member_id")
        if self.audience == "retail" and self.target_key == "cust_no":
            raise ValueError("a retail campaign cannot target cust_no")
        return self


class GeneratorSettings(StrictModel):
    seed: int
    scale_factor: Positive
    persons_per_scale_factor: int = Field(ge=100)
    history: History
    personas: dict[str, Persona]
    dirt: Dirt
    signal: Signal
    stores: int = Field(ge=1)
    campaigns: list[Campaign]

    @model_validator(mode="after")
    def _known_personas(self) -> GeneratorSettings:
        unknown = sorted(set(self.personas) - set(PERSONAS))
        missing = sorted(set(PERSONAS) - set(self.personas))
        if unknown or missing:
            raise ValueError(
                f"personas must be exactly {', '.join(PERSONAS)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        ids = [c.campaign_id for c in self.campaigns]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate campaign_id: {', '.join(dupes)}")
        return self

    @property
    def persons(self) -> int:
        return max(10, round(self.persons_per_scale_factor * self.scale_factor))

    def with_overrides(
        self, scale_factor: float | None = None, seed: int | None = None
    ) -> GeneratorSettings:
        """A copy with the scale factor and/or seed replaced (validated)."""
        update = {}
        if scale_factor is not None:
            if scale_factor <= 0:
                raise ValueError(f"scale_factor must be > 0, got {scale_factor}")
            update["scale_factor"] = scale_factor
        if seed is not None:
            update["seed"] = seed
        return self.model_copy(update=update)


def load_generator_settings(conf_dir: str | Path | None = None) -> GeneratorSettings:
    """Load and validate ``generator.yaml``; raises ConfigError listing every problem."""
    return load_model(conf_path("generator.yaml", conf_dir), GeneratorSettings)
