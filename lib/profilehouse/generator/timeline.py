"""When things happen: event timestamps inside a person's active span.

Churners fade out (event density falls linearly to zero at their churn date); festival shoppers
concentrate a share of their events around the festivals in :data:`vocab.FESTIVALS`.
Timestamps are local wall-clock time (Asia/Shanghai) as the source systems record them.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from profilehouse.generator import rand
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.vocab import FESTIVALS


def festival_dates(cfg: GeneratorSettings) -> list[str]:
    """Festival dates inside the history window."""
    start, end = cfg.history.start.isoformat(), cfg.history.end.isoformat()
    return [d for year in sorted(FESTIVALS) for d in FESTIVALS[year] if start <= d <= end]


def months_between_expr(start: Column, end: Column) -> Column:
    """Length of [start, end] in months (double, ≥ 0)."""
    return F.greatest(F.datediff(end, start).cast("double") / 30.44, F.lit(0.0))


def event_ts_expr(
    cfg: GeneratorSettings,
    salt: str,
    keys: list[Column | str],
    start: Column,
    end: Column,
    fade: Column,
    festival_share: Column | float = 0.0,
) -> Column:
    """A timestamp in [start, end] (dates, inclusive) for the event identified by ``keys``.

    ``fade`` (bool): density falls linearly towards ``end``. ``festival_share``: probability the
    event falls within a week of one of the festivals inside [start, end] instead (still
    clipped to [start, end]; a span without a festival has none).
    """
    seed = cfg.seed
    u = rand.uniform(seed, f"{salt}:t", *keys)
    frac = F.when(fade, F.lit(1.0) - F.sqrt(F.lit(1.0) - u)).otherwise(u)
    span_s = (F.datediff(end, start) + 1).cast("double") * 86_400.0
    start_s = F.unix_timestamp(start.cast("timestamp"))
    plain_s = start_s + (frac * span_s).cast("long")
    festivals = festival_dates(cfg)
    share = festival_share if isinstance(festival_share, Column) else F.lit(float(festival_share))
    if festivals:
        # the festivals inside this person's span, so a short span concentrates as much
        in_person_span = F.filter(
            F.array(*[F.lit(d).cast("date") for d in festivals]),
            lambda day: (day >= start) & (day <= end),
        )
        pick = F.floor(rand.uniform(seed, f"{salt}:fest", *keys) * F.size(in_person_span))
        fest_day = F.try_element_at(in_person_span, pick.cast("int") + 1)
        offset = F.round(rand.normal(seed, f"{salt}:fest_off", *keys) * 2.5).cast("int")
        fest_s = F.unix_timestamp(F.date_add(fest_day, offset).cast("timestamp")) + (
            rand.uniform(seed, f"{salt}:fest_h", *keys) * 86_400.0
        ).cast("long")
        end_s = start_s + span_s.cast("long") - 1
        in_span = (fest_s >= start_s) & (fest_s <= end_s)  # null: no festival in the span
        use_fest = F.coalesce(
            (rand.uniform(seed, f"{salt}:is_fest", *keys) < share) & in_span, F.lit(False)
        )
        seconds = F.when(use_fest, fest_s).otherwise(plain_s)
    else:
        seconds = plain_s
    # Shift to waking hours: most events happen 08:00-22:00.
    day_s = F.floor(seconds / 86_400) * 86_400
    hour_s = (F.lit(8 * 3600) + rand.uniform(seed, f"{salt}:h", *keys) * 14 * 3600).cast("long")
    return F.timestamp_seconds(day_s + hour_s)
