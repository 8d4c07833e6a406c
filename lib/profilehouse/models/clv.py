"""Customer lifetime value: BG/NBD purchases, Gamma-Gamma spend, discounted CLV per customer.

The models (Fader, Hardie & Lee 2005, "Counting your customers the easy way" and "RFM and CLV")
need per customer only four numbers, computed by Spark (:func:`build_rfm_summary`), in periods of
``period_days`` days (one day by default):

- ``frequency``: repeat purchase periods, i.e. the periods with a purchase less one;
- ``recency``: age at the last purchase (last purchase period less the first);
- ``T``: age at the end of the observation period (end less the first purchase period);
- ``monetary``: mean spend per repeat purchase period (0 without repeat purchases).

These are the definitions of the ``lifetimes`` package: purchases in one period count once and
their spends add up, and the first period is no repeat purchase.

Fitting maximises the likelihood on the driver (``scipy.optimize``) over *distinct tuples with
their customer counts* — ``(frequency, recency, T)`` for BG/NBD, ``(frequency, monetary)`` for
Gamma-Gamma — a small aggregate Spark computes, so only that table is collected, whatever the
number of customers. A table above ``max_distinct_tuples`` rows is grouped coarser (recency and
T rounded to 2, 4, ... periods; monetary to fewer significant digits) or, past the coarsest
allowed, refused with :class:`ClvFitError`.

Predictions are Spark column expressions built from the fitted parameters (no Python UDF):
P(alive), expected purchases in the next days, expected spend per purchase, and CLV over a
horizon of months, discounted monthly. Expected purchases need the Gauss hypergeometric function
2F1; it is computed by its power series (:func:`expected_purchases_expr` documents the
truncation).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from profilehouse.config import StrictModel
from profilehouse.errors import ProfilehouseError, SchemaError
from profilehouse.models.settings import models_section

log = logging.getLogger(__name__)

SECTION = "clv"

FREQUENCY = "frequency"
RECENCY = "recency"
AGE = "T"
MONETARY = "monetary"
CUSTOMERS = "customers"
FREQUENCY_HOLDOUT = "frequency_holdout"
MONETARY_HOLDOUT = "monetary_holdout"
SPEND_HOLDOUT = "spend_holdout"
DURATION_HOLDOUT = "duration_holdout"
P_ALIVE = "p_alive"
EXPECTED_PURCHASES = "expected_purchases"
EXPECTED_SPEND = "expected_spend"
CLV = "clv"

# the truncated 2F1 series loses more than this (relative) only for customers the series suits
# worst; then a warning says to raise hyp2f1_max_terms
SERIES_WARNING_ERROR = 1e-6
_MIN_SERIES_TERMS = 10
_REFERENCE_TERMS = 1_000_000
_SCALED_MAX_AGE = 10.0  # ages are scaled to at most this while fitting (as lifetimes does)


class ClvFitError(ProfilehouseError):
    """A CLV model cannot be fitted: no usable customers, or too many distinct tuples."""


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


class PurchaseSource(StrictModel):
    """Purchases read from one feature source of ``conf/features.yaml``: its rows of one order
    are one purchase, whose spend is the sum of ``amount``."""

    source: str = Field(min_length=1, description="Feature source with an event time.")
    where: str | None = Field(default=None, description="Spark SQL condition on its rows.")
    order: str = Field(min_length=1, description="Spark SQL: the order (receipt) key.")
    amount: str = Field(min_length=1, description="Spark SQL: a row's spend.")


class ClvSettings(StrictModel):
    """``clv:`` in ``conf/models.yaml``: purchases, periods, horizons, discounting and fitting
    limits."""

    purchases: list[PurchaseSource] = Field(
        default=[], description="Where purchases come from (the models stage reads them)."
    )

    period_days: int = Field(
        default=1, ge=1, le=366, description="Length of one period in days (1: daily)."
    )
    prediction_days: int = Field(
        default=90, ge=1, description="Expected purchases are predicted for this many days."
    )
    horizon_months: int = Field(default=12, ge=1, le=600, description="CLV horizon in months.")
    days_per_month: float = Field(
        default=365.25 / 12, gt=0, le=31, description="Length of a CLV month in days."
    )
    monthly_discount_rate: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="Spend in month m is discounted by (1 + rate)^-m.",
    )
    l2_penalty: float = Field(
        default=0.0,
        ge=0,
        description="Penalty times the sum of squared parameters added to the mean negative "
        "log-likelihood (lifetimes' penalizer_coef; ages scaled to at most 10, spend to mean 1).",
    )
    max_distinct_tuples: int = Field(
        default=200_000,
        ge=10,
        description="Most distinct tuples collected to the driver for a fit.",
    )
    max_rounding_periods: int = Field(
        default=16,
        ge=1,
        description="Coarsest rounding of recency and T (in periods) tried when there are more "
        "than max_distinct_tuples (roundings 1, 2, 4, ... up to this).",
    )
    monetary_significant_digits: int = Field(
        default=4,
        ge=1,
        le=15,
        description="Mean spend is rounded to this many significant digits for the Gamma-Gamma "
        "fit (fewer are tried, down to 1, above max_distinct_tuples).",
    )
    holdout_days: int = Field(
        default=90, ge=1, description="Days at the end kept out of the fit in the fit report."
    )
    report_frequency_buckets: int = Field(
        default=7,
        ge=1,
        description="The fit report compares holdout purchases for calibration frequency 0, "
        "1, ... and this number or more.",
    )
    hyp2f1_max_terms: int = Field(
        default=3000,
        ge=_MIN_SERIES_TERMS,
        le=100_000,
        description="Most terms of the 2F1 series per customer (expected purchases).",
    )
    hyp2f1_tolerance: float = Field(
        default=1e-10,
        gt=0,
        le=1e-3,
        description="Terms of the 2F1 series are summed until z^n is below this.",
    )


class _ClvSection(StrictModel):
    clv: ClvSettings


def load_clv_settings(path: str | Path | None = None) -> ClvSettings:
    """Load the ``clv:`` section of ``conf/models.yaml`` (other sections are other models').

    ``path``: the models file; default ``models.yaml`` in the config folder
    (:func:`profilehouse.config.conf_path`). Raises ConfigError naming the file and every bad
    key, its value and what is allowed.
    """
    return models_section(path, SECTION, _ClvSection)


# ---------------------------------------------------------------------------------------------
# per-customer summaries (Spark)
# ---------------------------------------------------------------------------------------------


def build_rfm_summary(
    transactions: DataFrame,
    end_date: dt.date,
    *,
    time_col: str,
    monetary_col: str,
    customer_col: str = "master_id",
    period_days: int = 1,
) -> DataFrame:
    """Per customer ``frequency``, ``recency``, ``T`` (periods, bigint) and ``monetary`` (double).

    ``end_date``: the last day observed (inclusive); later transactions are left out, as are
    transactions without a customer or time. Periods are counted back from ``end_date``: a
    purchase ``d`` days before it falls in period ``d // period_days`` before the end. A
    timestamp's day is taken in the session time zone. Raises SchemaError when a column is
    missing or of the wrong type.
    """
    _validate_transactions(transactions, customer_col, time_col, monetary_col)
    periods = _purchase_periods(
        transactions, end_date, customer_col, time_col, monetary_col, period_days
    )
    return _summary_of_periods(periods, customer_col)


def build_calibration_holdout(
    transactions: DataFrame,
    calibration_end: dt.date,
    holdout_end: dt.date,
    *,
    time_col: str,
    monetary_col: str,
    customer_col: str = "master_id",
    period_days: int = 1,
) -> DataFrame:
    """The summary up to ``calibration_end`` plus what each of its customers did after it.

    Adds ``frequency_holdout`` (purchase periods in ``(calibration_end, holdout_end]``),
    ``spend_holdout`` (their total spend), ``monetary_holdout`` (mean spend per purchase period,
    0 without) and ``duration_holdout`` (the holdout's length in periods, a double). Customers
    whose first purchase is after ``calibration_end`` are not in the result.
    """
    if holdout_end <= calibration_end:
        raise ValueError(
            f"holdout_end {holdout_end} must be after calibration_end {calibration_end}"
        )
    calibration = build_rfm_summary(
        transactions,
        calibration_end,
        time_col=time_col,
        monetary_col=monetary_col,
        customer_col=customer_col,
        period_days=period_days,
    )
    day = F.to_date(F.col(time_col))
    after_start = F.datediff(day, F.lit(calibration_end)) - 1
    holdout = (
        transactions.where(
            F.col(customer_col).isNotNull()
            & (day > F.lit(calibration_end))
            & (day <= F.lit(holdout_end))
        )
        .groupBy(customer_col, F.floor(after_start / period_days).alias("_period"))
        .agg(F.sum(monetary_col).alias("_spend"))
        .groupBy(customer_col)
        .agg(
            F.count(F.lit(1)).alias(FREQUENCY_HOLDOUT),
            F.sum("_spend").cast("double").alias(SPEND_HOLDOUT),
        )
    )
    duration = (holdout_end - calibration_end).days / period_days
    return (
        calibration.join(holdout, customer_col, "left")
        .fillna(0, [FREQUENCY_HOLDOUT])
        .fillna(0.0, [SPEND_HOLDOUT])
        .withColumn(
            MONETARY_HOLDOUT,
            F.when(
                F.col(FREQUENCY_HOLDOUT) > 0, F.col(SPEND_HOLDOUT) / F.col(FREQUENCY_HOLDOUT)
            ).otherwise(F.lit(0.0)),
        )
        .withColumn(DURATION_HOLDOUT, F.lit(float(duration)))
    )


def _validate_transactions(
    transactions: DataFrame, customer_col: str, time_col: str, monetary_col: str
) -> None:
    types = dict(transactions.dtypes)
    missing = [c for c in (customer_col, time_col, monetary_col) if c not in types]
    if missing:
        raise SchemaError(
            f"transactions: no column(s) {', '.join(missing)} "
            f"(present: {', '.join(transactions.columns)})"
        )
    problems = []
    fields = {f.name: f.dataType for f in transactions.schema.fields}
    if not isinstance(fields[time_col], T.DateType | T.TimestampType | T.TimestampNTZType):
        problems.append(f"{time_col} must be a date or timestamp, not {types[time_col]}")
    if not isinstance(fields[monetary_col], T.NumericType):
        problems.append(f"{monetary_col} must be numeric, not {types[monetary_col]}")
    if problems:
        raise SchemaError("transactions: " + "; ".join(problems))


def _purchase_periods(
    transactions: DataFrame,
    end_date: dt.date,
    customer_col: str,
    time_col: str,
    monetary_col: str,
    period_days: int,
) -> DataFrame:
    """One row per customer and purchase period: ``_before`` (periods before the end), spend."""
    day = F.to_date(F.col(time_col))
    before = F.floor(F.datediff(F.lit(end_date), day) / period_days)
    return (
        transactions.where(F.col(customer_col).isNotNull() & (day <= F.lit(end_date)))
        .groupBy(customer_col, before.alias("_before"))
        .agg(F.coalesce(F.sum(monetary_col), F.lit(0)).alias("_spend"))
    )


def _summary_of_periods(periods: DataFrame, customer_col: str) -> DataFrame:
    # spends keep their type (decimals add up exactly) until the mean
    summary = periods.groupBy(customer_col).agg(
        (F.count(F.lit(1)) - 1).alias(FREQUENCY),
        (F.max("_before") - F.min("_before")).alias(RECENCY),
        F.max("_before").alias(AGE),
        (F.sum("_spend") - F.max_by("_spend", "_before")).alias("_repeat"),
    )
    monetary = F.when(
        F.col(FREQUENCY) > 0, F.col("_repeat").cast("double") / F.col(FREQUENCY)
    ).otherwise(F.lit(0.0))
    return summary.select(
        customer_col,
        F.col(FREQUENCY).cast("bigint").alias(FREQUENCY),
        F.col(RECENCY).cast("bigint").alias(RECENCY),
        F.col(AGE).cast("bigint").alias(AGE),
        monetary.alias(MONETARY),
    )


# ---------------------------------------------------------------------------------------------
# distinct tuples (Spark aggregation, collected bounded)
# ---------------------------------------------------------------------------------------------


def build_rfm_tuples(summary: DataFrame, rounding_periods: int = 1) -> DataFrame:
    """Distinct ``(frequency, recency, T)`` with their number of ``customers``.

    ``recency`` and ``T`` are rounded to multiples of ``rounding_periods`` (doubles). A
    ``customers`` column already in ``summary`` is summed (a coarser grouping of tuples).
    """
    weight = F.col(CUSTOMERS) if CUSTOMERS in summary.columns else F.lit(1)

    def rounded(name: str) -> Column:
        value = F.col(name).cast("double")
        if rounding_periods == 1:
            return value.alias(name)
        return (F.round(value / rounding_periods) * rounding_periods).alias(name)

    return summary.groupBy(
        F.col(FREQUENCY).cast("bigint").alias(FREQUENCY), rounded(RECENCY), rounded(AGE)
    ).agg(F.sum(weight).cast("bigint").alias(CUSTOMERS))


def build_spend_tuples(summary: DataFrame, significant_digits: int) -> DataFrame:
    """Repeat customers' distinct ``(frequency, monetary)`` with their number of ``customers``.

    ``monetary`` is rounded to ``significant_digits`` significant digits; non-positive means
    are kept as they are (the fit leaves them out and counts them).
    """
    weight = F.col(CUSTOMERS) if CUSTOMERS in summary.columns else F.lit(1)
    return (
        summary.where(F.col(FREQUENCY) > 0)
        .groupBy(
            F.col(FREQUENCY).cast("bigint").alias(FREQUENCY),
            _significant_expr(F.col(MONETARY).cast("double"), significant_digits).alias(MONETARY),
        )
        .agg(F.sum(weight).cast("bigint").alias(CUSTOMERS))
    )


def _significant_expr(value: Column, digits: int) -> Column:
    """``value`` rounded to ``digits`` significant digits (non-positive values unchanged)."""
    scale = F.pow(F.lit(10.0), F.floor(F.log10(value)) - (digits - 1))
    return F.when(value > 0, F.round(value / scale) * scale).otherwise(value)


def _collect_first_small(
    candidates: Iterator[tuple[int, DataFrame]], max_rows: int, what: str, remedy: str
) -> tuple[int, list[Row]]:
    """Rows of the first candidate table with at most ``max_rows`` rows, and its resolution."""
    tried = []
    for resolution, table in candidates:
        rows = table.limit(max_rows + 1).collect()
        if len(rows) <= max_rows:
            if tried:
                tried_text = ", ".join(map(str, tried))
                log.warning(
                    "%s: more than %d distinct tuples at %s; fitted at %s",
                    what,
                    max_rows,
                    tried_text,
                    resolution,
                )
            return resolution, rows
        tried.append(resolution)
    raise ClvFitError(
        f"{what}: more than {max_rows} distinct tuples at every resolution tried "
        f"({', '.join(map(str, tried))}); {remedy}"
    )


def _roundings(max_rounding: int) -> list[int]:
    roundings = [1]
    while roundings[-1] * 2 <= max_rounding:
        roundings.append(roundings[-1] * 2)
    return roundings


# ---------------------------------------------------------------------------------------------
# likelihoods (numpy, on the driver)
# ---------------------------------------------------------------------------------------------


def bgnbd_log_likelihood(
    r: float,
    alpha: float,
    a: float,
    b: float,
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
) -> np.ndarray:
    """BG/NBD log-likelihood of each customer (FHL 2005, eq. 6), in log space throughout."""
    x = np.asarray(frequency, dtype=float)
    tx = np.asarray(recency, dtype=float)
    age = np.asarray(age, dtype=float)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    still_alive = -(r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore"):
        dropped = np.where(
            x > 0,
            np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + tx),
            -np.inf,
        )
    return common + np.logaddexp(still_alive, dropped)


def gamma_gamma_log_likelihood(
    p: float, q: float, v: float, frequency: np.ndarray, monetary: np.ndarray
) -> np.ndarray:
    """Gamma-Gamma log-likelihood of each repeat customer's mean spend (FHL 2005, RFM and CLV)."""
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary, dtype=float)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )


def _maximise(
    log_likelihood: Callable[..., np.ndarray],
    weights: np.ndarray,
    penalty: float,
    start: np.ndarray,
) -> tuple[np.ndarray, bool]:
    """Parameters (positive, optimised in log space) maximising the weighted mean
    log-likelihood less ``penalty`` × their sum of squares; and whether the optimiser converged."""
    total = weights.sum()

    def objective(log_params: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            params = np.exp(log_params)
            value = -(weights * log_likelihood(*params)).sum() / total
            value += penalty * float((params**2).sum())
        return float(value) if np.isfinite(value) else np.inf

    result = minimize(
        objective,
        np.log(start),
        method="Nelder-Mead",
        options={"maxiter": 5000, "maxfev": 10000, "xatol": 1e-8, "fatol": 1e-12},
    )
    return np.exp(result.x), bool(result.success)


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdFit:
    """A fitted BG/NBD model; ``alpha`` and ages are in periods of ``period_days`` days."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    distinct_tuples: int
    rounding_periods: int
    period_days: int
    converged: bool

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma spend model (``v`` in the currency of the spend)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int
    distinct_tuples: int
    significant_digits: int
    excluded_customers: int
    converged: bool

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}


def fit_bgnbd(
    summary: DataFrame,
    *,
    period_days: int = 1,
    l2_penalty: float = 0.0,
    max_distinct_tuples: int = 200_000,
    max_rounding_periods: int = 16,
) -> BgNbdFit:
    """Fit BG/NBD by maximum likelihood on the summary's distinct (frequency, recency, T).

    ``summary``: as :func:`build_rfm_summary` returns (``period_days`` must be the one it was
    built with). Only the distinct tuples reach the driver; they are persisted while coarser
    roundings are tried. Raises ClvFitError when no customer has a positive age or the tuples
    stay above ``max_distinct_tuples`` at ``max_rounding_periods``.
    """
    base = build_rfm_tuples(summary).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        candidates = (
            (rounding, base if rounding == 1 else build_rfm_tuples(base, rounding))
            for rounding in _roundings(max_rounding_periods)
        )
        rounding, rows = _collect_first_small(
            candidates,
            max_distinct_tuples,
            "BG/NBD",
            "raise clv.max_distinct_tuples or clv.max_rounding_periods",
        )
    finally:
        base.unpersist(blocking=False)
    x, tx, age, weights = (np.array([row[i] for row in rows], dtype=float) for i in range(4))
    if not len(rows) or age.max() <= 0:
        raise ClvFitError("BG/NBD: no customer observed for more than one period")
    scale = _SCALED_MAX_AGE / age.max()
    (r, alpha, a, b), converged = _maximise(
        lambda *p: bgnbd_log_likelihood(*p, x, tx * scale, age * scale),
        weights,
        l2_penalty,
        np.ones(4),
    )
    alpha /= scale
    fit = BgNbdFit(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float((weights * bgnbd_log_likelihood(r, alpha, a, b, x, tx, age)).sum()),
        customers=int(weights.sum()),
        distinct_tuples=len(rows),
        rounding_periods=rounding,
        period_days=period_days,
        converged=converged,
    )
    log.info(
        "BG/NBD fitted on %d customers (%d tuples): %s",
        fit.customers,
        fit.distinct_tuples,
        _format_params(fit.params),
    )
    return fit


def fit_gamma_gamma(
    summary: DataFrame,
    *,
    l2_penalty: float = 0.0,
    max_distinct_tuples: int = 200_000,
    significant_digits: int = 4,
) -> GammaGammaFit:
    """Fit Gamma-Gamma by maximum likelihood on repeat customers' distinct (frequency, monetary).

    Repeat customers whose mean spend is not positive (returns) are left out and counted in
    ``excluded_customers``. Fewer significant digits are tried, down to one, while there are
    more than ``max_distinct_tuples`` tuples. Raises ClvFitError when no repeat customer has a
    positive mean spend, or the tuples stay too many.
    """
    candidates = (
        (digits, build_spend_tuples(summary, digits)) for digits in range(significant_digits, 0, -1)
    )
    digits, rows = _collect_first_small(
        candidates, max_distinct_tuples, "Gamma-Gamma", "raise clv.max_distinct_tuples"
    )
    x, m, weights = (np.array([row[i] for row in rows], dtype=float) for i in range(3))
    positive = m > 0
    excluded = int(weights[~positive].sum())
    x, m, weights = x[positive], m[positive], weights[positive]
    if not len(x):
        raise ClvFitError("Gamma-Gamma: no repeat customer with a positive mean spend")
    scale = weights.sum() / (weights * m).sum()  # spend in units of its mean while fitting
    (p, q, v), converged = _maximise(
        lambda *params: gamma_gamma_log_likelihood(*params, x, m * scale),
        weights,
        l2_penalty,
        np.ones(3),
    )
    v /= scale
    fit = GammaGammaFit(
        p=float(p),
        q=float(q),
        v=float(v),
        log_likelihood=float((weights * gamma_gamma_log_likelihood(p, q, v, x, m)).sum()),
        customers=int(weights.sum()),
        distinct_tuples=int(positive.sum()),
        significant_digits=digits,
        excluded_customers=excluded,
        converged=converged,
    )
    log.info(
        "Gamma-Gamma fitted on %d repeat customers (%d tuples, %d left out): %s",
        fit.customers,
        fit.distinct_tuples,
        excluded,
        _format_params(fit.params),
    )
    return fit


def _format_params(params: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.4g}" for name, value in params.items())


# ---------------------------------------------------------------------------------------------
# predictions (Spark expressions)
# ---------------------------------------------------------------------------------------------


def probability_alive_expr(
    fit: BgNbdFit,
    frequency: str | Column = FREQUENCY,
    recency: str | Column = RECENCY,
    age: str | Column = AGE,
) -> Column:
    """P(alive at the end) of each customer; 1 without repeat purchases (BG/NBD's dropout
    follows purchases only)."""
    x, tx, t_end = (_double(c) for c in (frequency, recency, age))
    log_odds_dead = (
        (fit.r + x) * (F.log(fit.alpha + t_end) - F.log(fit.alpha + tx))
        + math.log(fit.a)
        - F.log(fit.b + x - 1)
    )
    return F.when(x <= 0, F.lit(1.0)).otherwise(1 / (1 + F.exp(log_odds_dead)))


def expected_purchases_expr(
    fit: BgNbdFit,
    days: float,
    frequency: str | Column = FREQUENCY,
    recency: str | Column = RECENCY,
    age: str | Column = AGE,
    *,
    max_terms: int = 3000,
    tolerance: float = 1e-10,
) -> Column:
    """Expected purchase periods of each customer in the ``days`` after the end (FHL eq. 10).

    With ``t`` the days in periods, ``z = t / (alpha + T + t)``, ``A = a + b - 1 - r`` and
    ``C = a + b + x - 1``, Euler's transformation turns the closed form's
    ``(1 - z)^(r + x) 2F1(r + x, b + x; C; z)`` into ``(1 - z)^(a - 1) 2F1(A, a - 1; C; z)`` =
    ``(1 - z)^(a - 1) (1 + (a - 1) H / C)``, where ``H = sum_{n>=1} h_n``, ``h_1 = A z`` and
    ``h_{n+1} = h_n (A + n)(a + n - 1) z / ((C + n)(n + 1))``. Its terms fall like
    ``n^(a - r - x - 2) z^n``: fast for repeat buyers, slowest for a customer without repeat
    purchases whose first purchase was on the end date, when ``z`` is nearest 1.

    Truncation: each row sums ``k = ceil(log(tolerance) / log(z))`` terms (at least 10, at most
    ``max_terms``) in one Spark ``aggregate`` over ``sequence(1, k)``, plus the geometric tail
    ``h_{k+1} / (1 - rho)`` with ``rho`` the next term ratio. Against scipy's hyp2f1 the relative
    error is below 1e-8 for typical parameters; a warning is logged when it may exceed
    :data:`SERIES_WARNING_ERROR` for the worst-placed customer (:func:`hyp2f1_truncation_error`).
    The ``(a - 1)`` factors cancel exactly, so ``a`` near 1 is no singularity.
    """
    _warn_if_truncated(fit, days, max_terms, tolerance)
    x, tx, t_end = (_double(c) for c in (frequency, recency, age))
    periods = F.lit(days / fit.period_days)
    alive_purchases = _alive_purchases_expr(fit, periods, x, t_end, max_terms, tolerance)
    return alive_purchases * probability_alive_expr(fit, x, tx, t_end)


def _alive_purchases_expr(
    fit: BgNbdFit, t: Column, x: Column, t_end: Column, max_terms: int, tolerance: float
) -> Column:
    """Expected purchases in the ``t`` periods after the end of a customer alive at the end."""
    log_survival = F.log(fit.alpha + t_end) - F.log(fit.alpha + t_end + t)  # log(1 - z)
    z = t / (fit.alpha + t_end + t)
    c = fit.a + fit.b - 1 + x
    terms = F.least(
        F.lit(max_terms),
        F.greatest(F.lit(_MIN_SERIES_TERMS), F.ceil(math.log(tolerance) / F.log(z))),
    ).cast("int")
    series = _hyp2f1_series_expr(fit.a + fit.b - 1 - fit.r, fit.a, c, z, terms)
    shift = fit.a - 1
    weight = F.exp(shift * log_survival)
    first = -log_survival if shift == 0 else -F.expm1(shift * log_survival) / shift
    return c * first - weight * series


def _warn_if_truncated(fit: BgNbdFit, days: float, max_terms: int, tolerance: float) -> None:
    error = hyp2f1_truncation_error(fit, days, max_terms=max_terms, tolerance=tolerance)
    if error > SERIES_WARNING_ERROR:
        log.warning(
            "expected purchases over %s days: the 2F1 series may be off by %.1e (relative) for "
            "new customers with max_terms=%d; raise clv.hyp2f1_max_terms",
            days,
            error,
            max_terms,
        )


def _hyp2f1_series_expr(big_a: float, a: float, c: Column, z: Column, terms: Column) -> Column:
    """``sum_{n>=1} h_n`` of :func:`expected_purchases_expr`: ``terms`` terms plus a geometric
    tail, as one higher-order Spark expression."""

    def ratio(n: Column) -> Column:
        return (big_a + n) * (a - 1 + n) * z / ((c + n) * (n + 1))

    def step(acc: Column, n: Column) -> Column:
        n = n.cast("double")
        return F.struct(
            (acc["total"] + acc["term"]).alias("total"),
            (acc["term"] * ratio(n)).alias("term"),
        )

    def finish(acc: Column) -> Column:
        rho = ratio(terms.cast("double") + 1)
        tail = F.when((rho >= 0) & (rho < 1), acc["term"] / (1 - rho)).otherwise(F.lit(0.0))
        return acc["total"] + tail

    start = F.struct(F.lit(0.0).alias("total"), (F.lit(big_a) * z).alias("term"))
    return F.aggregate(F.sequence(F.lit(1), terms), start, step, finish)


def hyp2f1_truncation_error(
    fit: BgNbdFit, days: float, *, max_terms: int = 3000, tolerance: float = 1e-10
) -> float:
    """Relative error of the truncated series of :func:`expected_purchases_expr` for the
    customer it suits worst (no repeat purchase, first purchase on the end date), against the
    series to many more terms (numpy, on the driver)."""
    t = days / fit.period_days
    z = t / (fit.alpha + t)
    if z <= 0:
        return 0.0
    big_a, c = fit.a + fit.b - 1 - fit.r, fit.a + fit.b - 1
    k = int(min(max_terms, max(_MIN_SERIES_TERMS, math.ceil(math.log(tolerance) / math.log(z)))))
    n = np.arange(1, max(_REFERENCE_TERMS, 10 * k) + 1, dtype=float)
    ratios = (big_a + n) * (fit.a - 1 + n) * z / ((c + n) * (n + 1))
    terms = big_a * z * np.concatenate(([1.0], np.cumprod(ratios[:-1])))
    truncated = terms[:k].sum() + (terms[k] / (1 - ratios[k]) if 0 <= ratios[k] < 1 else 0.0)
    reference = terms.sum()
    shift = fit.a - 1
    log_survival = -math.log1p(t / fit.alpha)
    first = -log_survival if shift == 0 else -math.expm1(shift * log_survival) / shift
    weight = math.exp(shift * log_survival)
    exact = c * first - weight * reference
    return abs(weight * (reference - truncated)) / abs(exact) if exact else 0.0


def expected_spend_expr(
    fit: GammaGammaFit, frequency: str | Column = FREQUENCY, monetary: str | Column = MONETARY
) -> Column:
    """Expected spend per purchase of each customer: ``p (v + x m) / (p x + q - 1)``.

    Without repeat purchases it is the population mean ``p v / (q - 1)``; a negative mean spend
    counts as 0. Raises ValueError when ``q <= 1`` (the mean spend is then infinite).
    """
    if fit.q <= 1:
        raise ValueError(f"Gamma-Gamma q = {fit.q:.4g} <= 1: the expected spend is infinite")
    x, m = _double(frequency), F.greatest(_double(monetary), F.lit(0.0))
    return fit.p * (fit.v + x * m) / (fit.p * x + fit.q - 1)


def clv_expr(
    bgnbd: BgNbdFit,
    gamma_gamma: GammaGammaFit,
    *,
    horizon_months: int,
    monthly_discount_rate: float,
    days_per_month: float = 365.25 / 12,
    frequency: str | Column = FREQUENCY,
    recency: str | Column = RECENCY,
    age: str | Column = AGE,
    monetary: str | Column = MONETARY,
    max_terms: int = 3000,
    tolerance: float = 1e-10,
) -> Column:
    """Discounted CLV of each customer over ``horizon_months``.

    ``sum_m (E[purchases by month m] - E[purchases by month m-1]) * spend / (1 + rate)^m``, with
    the expected spend per purchase of :func:`expected_spend_expr`: :func:`alive_value_expr`
    times P(alive) times the expected spend.
    """
    alive_value = alive_value_expr(
        bgnbd,
        horizon_months=horizon_months,
        monthly_discount_rate=monthly_discount_rate,
        days_per_month=days_per_month,
        frequency=frequency,
        age=age,
        max_terms=max_terms,
        tolerance=tolerance,
    )
    spend = expected_spend_expr(gamma_gamma, frequency, monetary)
    return alive_value * probability_alive_expr(bgnbd, frequency, recency, age) * spend


def alive_value_expr(
    bgnbd: BgNbdFit,
    *,
    horizon_months: int,
    monthly_discount_rate: float,
    days_per_month: float = 365.25 / 12,
    frequency: str | Column = FREQUENCY,
    age: str | Column = AGE,
    max_terms: int = 3000,
    tolerance: float = 1e-10,
) -> Column:
    """Discounted expected purchases over ``horizon_months`` of a customer alive at the end:
    a function of frequency and age only (recency enters through P(alive)).

    Summed by parts (each month's cumulative purchases weighted by ``D_m - D_{m+1}``, the last
    by ``D_H``, with ``D_m = (1 + rate)^-m``) over one Spark ``transform`` of the months, so
    the plan holds the series once whatever the horizon.
    """
    _warn_if_truncated(bgnbd, horizon_months * days_per_month, max_terms, tolerance)
    x, t_end = _double(frequency), _double(age)
    discount = 1 + monthly_discount_rate

    def weighted(month: Column) -> Column:
        m = month.cast("double")
        weight = F.when(
            m < horizon_months, F.pow(F.lit(discount), -m) - F.pow(F.lit(discount), -m - 1)
        ).otherwise(F.lit(discount**-horizon_months))
        periods = m * (days_per_month / bgnbd.period_days)
        return weight * _alive_purchases_expr(bgnbd, periods, x, t_end, max_terms, tolerance)

    months = F.transform(F.sequence(F.lit(1), F.lit(horizon_months)), weighted)
    return F.aggregate(months, F.lit(0.0), lambda total, value: total + value)


def build_clv_predictions(
    summary: DataFrame,
    bgnbd: BgNbdFit,
    gamma_gamma: GammaGammaFit,
    *,
    prediction_days: int,
    horizon_months: int,
    monthly_discount_rate: float,
    days_per_month: float = 365.25 / 12,
    max_terms: int = 3000,
    tolerance: float = 1e-10,
) -> DataFrame:
    """``summary`` with ``p_alive``, ``expected_purchases`` (next ``prediction_days``),
    ``expected_spend`` (per purchase) and ``clv`` (over ``horizon_months``).

    The 2F1 series (up to ``max_terms`` terms, ``horizon_months + 1`` times) depend on
    frequency and age only: they are summed once per distinct (frequency, age) pair and
    joined back, not once per customer; P(alive) and the spend are cheap per row."""
    series = {"max_terms": max_terms, "tolerance": tolerance}
    alive_purchases, alive_value = "__alive_purchases", "__alive_value"
    periods = F.lit(prediction_days / bgnbd.period_days)
    _warn_if_truncated(bgnbd, prediction_days, max_terms, tolerance)
    per_pair = (
        summary.select(FREQUENCY, AGE)
        .distinct()
        .select(
            FREQUENCY,
            AGE,
            _alive_purchases_expr(
                bgnbd, periods, _double(FREQUENCY), _double(AGE), max_terms, tolerance
            ).alias(alive_purchases),
            alive_value_expr(
                bgnbd,
                horizon_months=horizon_months,
                monthly_discount_rate=monthly_discount_rate,
                days_per_month=days_per_month,
                **series,
            ).alias(alive_value),
        )
    )
    p_alive = probability_alive_expr(bgnbd)
    spend = expected_spend_expr(gamma_gamma)
    return summary.join(per_pair, [FREQUENCY, AGE], "left").select(
        *summary.columns,
        p_alive.alias(P_ALIVE),
        (F.col(alive_purchases) * p_alive).alias(EXPECTED_PURCHASES),
        spend.alias(EXPECTED_SPEND),
        (F.col(alive_value) * p_alive * spend).alias(CLV),
    )


def _double(column: str | Column) -> Column:
    return (F.col(column) if isinstance(column, str) else column).cast("double")


# ---------------------------------------------------------------------------------------------
# fit report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldoutBucket:
    """Holdout purchases of the customers with one calibration frequency (``7+``: or more)."""

    frequency: str
    customers: int
    actual_purchases: float
    predicted_purchases: float


@dataclass(frozen=True)
class ClvFitReport:
    """What a fit found and, with a holdout, how well it predicts the holdout purchases."""

    bgnbd: BgNbdFit
    gamma_gamma: GammaGammaFit | None = None
    holdout_days: float | None = None
    actual_holdout_purchases: float | None = None
    predicted_holdout_purchases: float | None = None
    holdout_buckets: tuple[HoldoutBucket, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for logs and the run summary)."""
        return asdict(self)


def build_holdout_comparison(
    calibration_holdout: DataFrame,
    fit: BgNbdFit,
    holdout_days: float,
    *,
    frequency_buckets: int = 7,
    max_terms: int = 3000,
    tolerance: float = 1e-10,
) -> DataFrame:
    """Per calibration-frequency bucket (``0`` … ``<buckets>+``): ``bucket`` (its lowest
    frequency), ``customers``, ``actual`` and ``predicted`` holdout purchases (sums).

    ``calibration_holdout``: as :func:`build_calibration_holdout` returns, for a fit on its
    calibration summary, over a holdout of ``holdout_days``.
    """
    predicted = expected_purchases_expr(fit, holdout_days, max_terms=max_terms, tolerance=tolerance)
    bucket = F.least(F.col(FREQUENCY), F.lit(frequency_buckets)).cast("int")
    return (
        calibration_holdout.groupBy(bucket.alias("bucket"))
        .agg(
            F.count(F.lit(1)).alias(CUSTOMERS),
            F.sum(F.col(FREQUENCY_HOLDOUT).cast("double")).alias("actual"),
            F.sum(predicted).alias("predicted"),
        )
        .orderBy("bucket")
    )


def _holdout_days(calibration_holdout: DataFrame, fit: BgNbdFit) -> float:
    durations = calibration_holdout.select(DURATION_HOLDOUT).distinct().limit(2).collect()
    if len(durations) != 1:
        raise ValueError(f"calibration_holdout: {DURATION_HOLDOUT} must be one value for all rows")
    return float(durations[0][0]) * fit.period_days


def _bucket_label(bucket: int, frequency_buckets: int) -> str:
    return f"{bucket}+" if bucket == frequency_buckets else str(bucket)


def build_fit_report(
    bgnbd: BgNbdFit,
    gamma_gamma: GammaGammaFit | None = None,
    calibration_holdout: DataFrame | None = None,
    *,
    frequency_buckets: int = 7,
    max_terms: int = 3000,
    tolerance: float = 1e-10,
) -> ClvFitReport:
    """The fits' parameters and sizes and, given the calibration/holdout summary the BG/NBD fit
    was made on, predicted against actual holdout purchases, in total and by frequency."""
    if calibration_holdout is None:
        return ClvFitReport(bgnbd, gamma_gamma)
    days = _holdout_days(calibration_holdout, bgnbd)
    rows = build_holdout_comparison(
        calibration_holdout,
        bgnbd,
        days,
        frequency_buckets=frequency_buckets,
        max_terms=max_terms,
        tolerance=tolerance,
    ).collect()
    buckets = tuple(
        HoldoutBucket(
            frequency=_bucket_label(row["bucket"], frequency_buckets),
            customers=int(row[CUSTOMERS]),
            actual_purchases=float(row["actual"]),
            predicted_purchases=float(row["predicted"]),
        )
        for row in rows
    )
    return ClvFitReport(
        bgnbd,
        gamma_gamma,
        holdout_days=days,
        actual_holdout_purchases=sum(b.actual_purchases for b in buckets),
        predicted_holdout_purchases=sum(b.predicted_purchases for b in buckets),
        holdout_buckets=buckets,
    )


def evaluate_clv_holdout(
    transactions: DataFrame,
    end_date: dt.date,
    settings: ClvSettings,
    *,
    time_col: str,
    monetary_col: str,
    customer_col: str = "master_id",
) -> ClvFitReport:
    """Fit both models on all but the last ``settings.holdout_days`` before ``end_date`` and
    report how well they predict those days' purchases."""
    calibration_end = end_date - dt.timedelta(days=settings.holdout_days)
    split = build_calibration_holdout(
        transactions,
        calibration_end,
        end_date,
        time_col=time_col,
        monetary_col=monetary_col,
        customer_col=customer_col,
        period_days=settings.period_days,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bgnbd = fit_bgnbd(
            split,
            period_days=settings.period_days,
            l2_penalty=settings.l2_penalty,
            max_distinct_tuples=settings.max_distinct_tuples,
            max_rounding_periods=settings.max_rounding_periods,
        )
        gamma_gamma = fit_gamma_gamma(
            split,
            l2_penalty=settings.l2_penalty,
            max_distinct_tuples=settings.max_distinct_tuples,
            significant_digits=settings.monetary_significant_digits,
        )
        return build_fit_report(
            bgnbd,
            gamma_gamma,
            split,
            frequency_buckets=settings.report_frequency_buckets,
            max_terms=settings.hyp2f1_max_terms,
            tolerance=settings.hyp2f1_tolerance,
        )
    finally:
        split.unpersist(blocking=False)
