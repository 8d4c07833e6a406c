"""Deterministic pseudo-random Column expressions.

Every random draw is a hash of (seed, salt, key columns), so a value depends only on what it
describes, never on partitioning, ordering or the number of executors: the same seed gives
byte-identical data on one core or a cluster. ``salt`` names the draw, so two draws for the same
key are independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

_MANTISSA = 1 << 53


def uniform(seed: int, salt: str, *keys: Column | str) -> Column:
    """Uniform double in [0, 1) for the given key columns.

    With column-name keys the whole draw is one SQL expression (one JVM call instead of a dozen),
    which keeps building the generator's large plans fast; both forms compute the same value.
    """
    if all(isinstance(k, str) for k in keys):
        return F.expr(uniform_sql(seed, salt, *keys))  # type: ignore[arg-type]
    cols = [F.lit(seed), F.lit(salt), *[F.col(k) if isinstance(k, str) else k for k in keys]]
    return F.pmod(F.xxhash64(*cols), F.lit(_MANTISSA)).cast("double") / float(_MANTISSA)


def uniform_sql(seed: int, salt: str, *keys: str) -> str:
    """SQL text of :func:`uniform` for column-name keys."""
    seed_sql = str(seed) if -(2**31) <= seed < 2**31 else f"{seed}L"
    salt_sql = "'" + salt.replace("\\", "\\\\").replace("'", "\\'") + "'"
    key_sql = ", ".join(f"`{k.replace('`', '``')}`" for k in keys)
    args = ", ".join(a for a in (seed_sql, salt_sql, key_sql) if a)
    return f"CAST(pmod(xxhash64({args}), {_MANTISSA}L) AS DOUBLE) / {float(_MANTISSA)!r}"


def bernoulli(rate: float, seed: int, salt: str, *keys: Column | str) -> Column:
    """Boolean that is true with probability ``rate``."""
    return uniform(seed, salt, *keys) < F.lit(float(rate))


def randint(low: int, high: int, seed: int, salt: str, *keys: Column | str) -> Column:
    """Integer uniform in [low, high] inclusive."""
    span = high - low + 1
    return (F.floor(uniform(seed, salt, *keys) * span) + low).cast("long")


def normal(seed: int, salt: str, *keys: Column | str) -> Column:
    """Standard normal draw (Box-Muller over two independent uniforms)."""
    u1 = F.greatest(uniform(seed, f"{salt}#1", *keys), F.lit(1e-12))
    u2 = uniform(seed, f"{salt}#2", *keys)
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * u2)


def lognormal(
    mean: Column | float, sigma: float, seed: int, salt: str, *keys: Column | str
) -> Column:
    """Positive draw whose expectation is ``mean`` (log-normal with shape ``sigma``)."""
    mean_col = mean if isinstance(mean, Column) else F.lit(float(mean))
    return mean_col * F.exp(normal(seed, salt, *keys) * sigma - sigma * sigma / 2.0)


def count_draw(mean: Column | float, seed: int, salt: str, *keys: Column | str) -> Column:
    """Non-negative integer count with expectation ≈ ``mean`` (rounded log-normal, shape 0.6)."""
    return F.greatest(F.round(lognormal(mean, 0.6, seed, salt, *keys)), F.lit(0)).cast("int")


def choice(values: Sequence[str], seed: int, salt: str, *keys: Column | str) -> Column:
    """One of ``values`` uniformly."""
    arr = literal_array(values)
    idx = F.floor(uniform(seed, salt, *keys) * len(values)).cast("int") + 1
    return F.element_at(arr, idx)


def weighted_choice(
    weights: dict[str, float] | Sequence[tuple[str, float]],
    seed: int,
    salt: str,
    *keys: Column | str,
) -> Column:
    """One of the keys of ``weights`` with probability proportional to its weight."""
    items = list(weights.items()) if isinstance(weights, dict) else list(weights)
    total = sum(w for _, w in items)
    if total <= 0:
        raise ValueError(f"weights for {salt!r} must sum to a positive number, got {items}")
    u = uniform(seed, salt, *keys)
    cumulative = 0.0
    expr = None
    for value, weight in items[:-1]:
        cumulative += weight / total
        expr = (
            F.when(u < cumulative, F.lit(value))
            if expr is None
            else expr.when(u < cumulative, F.lit(value))
        )
    last = F.lit(items[-1][0])
    return last if expr is None else expr.otherwise(last)


def scramble(value: Column | str, modulus: int, multiplier: int, offset: int) -> Column:
    """Bijective scrambling of integers in [0, modulus) (``multiplier`` coprime to ``modulus``).

    Turns sequential IDs into unique, non-sequential numbers (customer numbers, mobiles): two
    affine rounds with a rotation of the decimal digits in between, so neighbours look unrelated.
    ``modulus`` must be a power of ten.
    """
    if math.gcd(multiplier, modulus) != 1:
        raise ValueError(f"multiplier {multiplier} must be coprime to modulus {modulus}")
    width = len(str(modulus)) - 1
    if modulus != 10**width or width < 2:
        raise ValueError(f"modulus must be a power of ten >= 100, got {modulus}")
    half = 10 ** (width // 2)
    col = F.col(value) if isinstance(value, str) else value
    x = F.pmod(col.cast("long") * F.lit(multiplier) + F.lit(offset), F.lit(modulus))
    rotated = F.pmod(x, F.lit(half)) * F.lit(modulus // half) + F.floor(x / half).cast("long")
    return F.pmod(rotated * F.lit(multiplier) + F.lit(offset // 7), F.lit(modulus))


def digits(value: Column, width: int) -> Column:
    """``value`` as a zero-padded decimal string of ``width`` digits."""
    return F.lpad(value.cast("string"), width, "0")


def pick_from(array_values: Sequence[str], index: Column) -> Column:
    """Element ``index`` (0-based, taken modulo the length) of a literal array."""
    arr = literal_array(array_values)
    return F.element_at(arr, (F.pmod(index, F.lit(len(array_values))) + 1).cast("int"))


_SEP = "\u001f"


def literal_array(values: Sequence[str]) -> Column:
    """A constant array<string> built with two JVM calls (split of one literal), not one per item.

    Spark folds it to a literal at optimisation; building plans stays fast for long vocabularies.
    """
    if any(_SEP in v for v in values):
        raise ValueError("values must not contain the unit separator character")
    return F.split(F.lit(_SEP.join(values)), _SEP)


def literal_map(mapping: dict[str, float | int | str], value_type: str = "double") -> Column:
    """A constant map<string, value_type> (see :func:`literal_array`)."""
    keys = literal_array([str(k) for k in mapping])
    values = literal_array([str(v) for v in mapping.values()]).cast(f"array<{value_type}>")
    return F.map_from_arrays(keys, values)
