"""Dirty-data patterns: how one true person is typed differently in each system.

:func:`with_person_dirt` turns true person columns into the values a source system holds, and
records which patterns were applied as ``f_*`` flag columns (kept in the ground truth, never in
the source files), so tests can check each pattern's rate and that it really shows in the files.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.generator import rand
from profilehouse.generator.settings import Dirt, GeneratorSettings
from profilehouse.generator.writer import batch_of_expr

# Formats a mobile is typed in (plain 11 digits is the clean one).
MOBILE_FORMATS = (
    "+86 {3} {4} {4}",
    "+86-{3}-{4}-{4}",
    "0086{11}",
    "{3}-{4}-{4}",
    "{3} {4} {4}",
    "+86{11}",
    " {11} ",
)
BAD_DATES = ("N/A", "0000-00-00", "31/02/2020", "99999999", "unknown")

FLAG_COLUMNS = (
    "f_name_typo",
    "f_name_traditional",
    "f_name_spacing",
    "f_mobile_formatted",
    "f_email_upper",
    "f_birth_swapped",
    "f_stale_address",
    "f_invalid_id_check",
    "f_bad_date",
    "f_missing_mobile",
    "f_missing_email",
    "f_missing_address",
)


def formatted_mobile_expr(mobile: Column, style: Column) -> Column:
    """``mobile`` (11 digits) written in format number ``style`` (0..len(MOBILE_FORMATS)-1)."""
    a, b, c = F.substring(mobile, 1, 3), F.substring(mobile, 4, 4), F.substring(mobile, 8, 4)
    variants = [
        F.concat(F.lit("+86 "), a, F.lit(" "), b, F.lit(" "), c),
        F.concat(F.lit("+86-"), a, F.lit("-"), b, F.lit("-"), c),
        F.concat(F.lit("0086"), mobile),
        F.concat(a, F.lit("-"), b, F.lit("-"), c),
        F.concat(a, F.lit(" "), b, F.lit(" "), c),
        F.concat(F.lit("+86"), mobile),
        F.concat(F.lit(" "), mobile, F.lit(" ")),
    ]
    expr = F.when(style == 0, variants[0])
    for i, v in enumerate(variants[1:], start=1):
        expr = expr.when(style == i, v)
    return expr.otherwise(mobile)


def spaced_name_expr(surname: Column, given: Column, style: Column) -> Column:
    """A name with stray spacing: padded, a space or an ideographic space inside."""
    name = F.concat(surname, given)
    return (
        F.when(style == 0, F.concat(F.lit(" "), name, F.lit("  ")))
        .when(style == 1, F.concat(surname, F.lit(" "), given))
        .otherwise(F.concat(surname, F.lit("\u3000"), given))
    )


def wrong_check_char_expr(id_no: Column, shift: Column) -> Column:
    """``id_no`` with its check character replaced by a different one."""
    chars = "0123456789X"
    current = F.instr(F.lit(chars), F.substring(id_no, 18, 1)) - 1
    new_idx = F.pmod(current + shift, F.lit(11)) + 1
    return F.concat(F.substring(id_no, 1, 17), F.substring(F.lit(chars), new_idx.cast("int"), 1))


def with_person_dirt(
    df: DataFrame,
    dirt: Dirt,
    seed: int,
    source: str,
    key: str,
    date_format: str,
    mobile_col: str = "mobile",
) -> DataFrame:
    """Add ``src_*`` columns (values as ``source`` holds them) and ``f_*`` flags.

    Expects the true columns of :func:`~profilehouse.generator.persons.build_persons` plus
    ``key`` (the record's unique key, so draws differ per record and per system).
    ``date_format`` is the source's Spark date pattern for ``src_birth_date``.
    """

    def draw(name: str) -> Column:
        return rand.uniform(seed, f"{source}:{name}", key)

    d = dirt
    names = ("typo", "trad", "space", "miss_mobile", "mobile_fmt", "miss_email", "upper",
             "bad_date", "swap", "miss_addr", "stale", "id_check")  # fmt: skip
    df = df.withColumns({f"_u_{n}": draw(n) for n in names})

    def u(name: str) -> Column:
        return F.col(f"_u_{name}")

    typo = u("typo") < d.name_typo
    trad = ~typo & (u("trad") < d.name_traditional)
    missing_mobile = u("miss_mobile") < d.missing_field
    missing_email = F.col("email").isNull() | (u("miss_email") < d.missing_field)
    bad_date = u("bad_date") < d.bad_date
    missing_address = u("miss_addr") < d.missing_field
    df = df.withColumns(
        {
            "f_name_typo": typo,
            "f_name_traditional": trad,
            "f_name_spacing": ~typo & ~trad & (u("space") < d.name_spacing),
            "f_missing_mobile": missing_mobile,
            "f_mobile_formatted": ~missing_mobile & (u("mobile_fmt") < d.mobile_formatted),
            "f_missing_email": missing_email,
            "f_email_upper": ~missing_email & (u("upper") < d.email_upper),
            "f_bad_date": bad_date,
            "f_birth_swapped": ~bad_date
            & (F.dayofmonth("birth_date") <= 12)
            & (F.dayofmonth("birth_date") != F.month("birth_date"))
            & (u("swap") < d.birth_swapped),
            "f_missing_address": missing_address,
            "f_stale_address": ~missing_address & (u("stale") < d.stale_address),
            "f_invalid_id_check": u("id_check") < d.invalid_id_check,
        }
    ).drop(*[f"_u_{n}" for n in names])
    style = lambda name, k: F.floor(draw(name) * k).cast("int")  # noqa: E731
    swapped = F.make_date(F.year("birth_date"), F.dayofmonth("birth_date"), F.month("birth_date"))
    none = F.lit(None).cast("string")
    return df.withColumns(
        {
            "src_name": F.when(F.col("f_name_typo"), F.col("name_typo"))
            .when(F.col("f_name_traditional"), F.col("name_traditional"))
            .when(
                F.col("f_name_spacing"),
                spaced_name_expr(F.col("surname"), F.col("given_name"), style("space_style", 3)),
            )
            .otherwise(F.col("name")),
            "src_mobile": F.when(F.col("f_missing_mobile"), none)
            .when(
                F.col("f_mobile_formatted"),
                formatted_mobile_expr(
                    F.col(mobile_col), style("mobile_style", len(MOBILE_FORMATS))
                ),
            )
            .otherwise(F.col(mobile_col)),
            "src_email": F.when(F.col("f_missing_email"), none)
            .when(F.col("f_email_upper"), F.upper("email"))
            .otherwise(F.col("email")),
            "src_birth_date": F.when(
                F.col("f_bad_date"), rand.choice(BAD_DATES, seed, f"{source}:bad_date_v", key)
            )
            .when(F.col("f_birth_swapped"), F.date_format(swapped, date_format))
            .otherwise(F.date_format("birth_date", date_format)),
            "src_address": F.when(F.col("f_missing_address"), none)
            .when(F.col("f_stale_address"), F.col("old_address"))
            .otherwise(F.col("address")),
            "src_id_no": F.when(
                F.col("f_invalid_id_check"),
                wrong_check_char_expr(
                    F.col("id_no"), rand.randint(1, 10, seed, f"{source}:idc", key)
                ),
            ).otherwise(F.col("id_no")),
        }
    )


def bad_value_expr(
    value: Column, rate: float, bad_values: tuple[str, ...], seed: int, salt: str, key: str
) -> tuple[Column, Column]:
    """(value replaced by one of ``bad_values`` at ``rate``, flag of the replacement)."""
    flag = rand.uniform(seed, f"{salt}:bad", key) < rate
    bad = rand.choice(bad_values, seed, f"{salt}:bad_v", key)
    return F.when(flag, bad).otherwise(value.cast("string")), flag


def patterns_expr(flags: dict[str, Column | str]) -> Column:
    """array<string> of the pattern names whose flag is true (empty array when none)."""
    items = [
        F.when(F.col(flag) if isinstance(flag, str) else flag, F.lit(name))
        for name, flag in flags.items()
    ]
    return F.array_compact(F.array(*items)) if items else F.array().cast("array<string>")


def person_patterns_expr() -> Column:
    """Patterns array for the flags that :func:`with_person_dirt` adds."""
    return patterns_expr({c.removeprefix("f_"): c for c in FLAG_COLUMNS})


def with_delivery(
    df: DataFrame,
    cfg: GeneratorSettings,
    source: str,
    event_date: Column,
    key: str,
    duplicates: bool = True,
) -> DataFrame:
    """Add ``batch`` (late events one batch late, flag ``f_late_event``) and exact duplicates.

    ``event_date`` decides the batch: the full-history batch up to ``history.initial_batch``,
    else the event's own day; a share ``dirt.late_event`` of the daily events (all but the last
    day's) arrives one batch late. Duplicated rows get ``f_duplicate_event`` on the re-delivered
    copy only.
    """
    seed, initial = cfg.seed, cfg.history.initial_batch
    late = (
        (event_date > F.lit(initial))
        & (event_date < F.lit(cfg.history.end))
        & rand.bernoulli(cfg.dirt.late_event, seed, f"{source}:late", key)
    )
    df = df.withColumns(
        {
            "f_late_event": late,
            "batch": F.when(late, F.date_format(F.date_add(event_date, 1), "yyyy-MM-dd")).otherwise(
                batch_of_expr(event_date, initial.isoformat())
            ),
        }
    )
    if not duplicates:
        return df.withColumn("f_duplicate_event", F.lit(False))
    dup = rand.bernoulli(cfg.dirt.duplicate_event, seed, f"{source}:dup", key)
    copies = F.when(dup, F.array(F.lit(False), F.lit(True))).otherwise(F.array(F.lit(False)))
    return df.select("*", F.explode(copies).alias("f_duplicate_event"))
