"""Text encodings of landing files: a file that does not decode cleanly stops its load.

Chinese core-banking and POS exports are often GBK / GB18030. Read as UTF-8 such a file would
turn every name into U+FFFD replacement characters, whose tokens then collide and merge
strangers in identity. So every text file is checked before its rows reach bronze, and a bad
one fails the load with one line naming the file, the first bad line, the offending bytes (at
most three) and the encoding the file most likely has.

How the check stays cheap and distributed: Spark's ``text`` reader keeps each line's *raw bytes*
(it never decodes). For UTF-8 the built-in ``is_valid_utf8`` tests them exactly, so a genuine
U+FFFD in a UTF-8 file passes. For another charset the line is decoded by the built-in
``decode`` in a separate session whose legacy settings allow any Java charset and replace
undecodable bytes with U+FFFD; a line is bad when the decoded text holds U+FFFD the raw bytes do
not encode. The normal path is one scan with a filter and a per-file ``min`` that returns no
rows; the line number and the bytes of a bad line are computed only when there is one.
Measured on the SF 0.1 demo landing (259 MB of CSV/JSON lines, 2.2M rows): the scans of all
sources took 15 s against 400-650 s for the whole bronze load on the same (heavily shared,
2-core) machine, i.e. a few per cent of the load.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import SchemaError

DEFAULT_ENCODING = "UTF-8"
_REPLACEMENT = "\ufffd"
_GUESSES = ("UTF-8", "GB18030", "Big5")
_SHOWN_BYTES = 3
_SAMPLE_BYTES = 65536
_JAVA_CHARSETS = "spark.sql.legacy.javaCharsets"
_CODING_ERRORS = "spark.sql.legacy.codingErrorAction"


def is_utf8(encoding: str) -> bool:
    """True when ``encoding`` names UTF-8 (any spelling Python accepts)."""
    return codecs.lookup(encoding).name == "utf-8"


def encoding_problem(encoding: str) -> str | None:
    """Why ``encoding`` cannot be used for line-based landing files; None when it can.

    Files are split into lines on the newline byte before decoding, so the charset must encode
    ASCII as ASCII (UTF-8, GB18030, GBK, Big5, ISO-8859-x do; UTF-16/32 do not).
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        return f"unknown encoding {encoding!r} (expected e.g. UTF-8, GB18030, GBK or Big5)"
    probe = '\n\r,"{}:abc 019'
    try:
        ascii_compatible = probe.encode(encoding) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_compatible = False
    if not ascii_compatible:
        return (
            f"encoding {encoding!r} does not keep ASCII bytes as they are (UTF-16/UTF-32 do not); "
            "convert the export to UTF-8 or GB18030"
        )
    return None


def likely_encoding(data: bytes, configured: str) -> str | None:
    """The first of UTF-8, GB18030, Big5 (other than ``configured``) that decodes ``data``."""
    for guess in _GUESSES:
        if codecs.lookup(guess).name == codecs.lookup(configured).name:
            continue
        try:
            data.decode(guess)
        except UnicodeDecodeError:
            continue
        return guess
    return None


def undecodable_line_message(
    file: str, line: int, raw: bytes, encoding: str, source: str | None
) -> str:
    """One line: file, line number, the first bad bytes (at most three) and what to set."""
    try:
        raw.decode(encoding)
        start = raw.find(_REPLACEMENT.encode(encoding)) if is_utf8(encoding) else 0
        start = max(start, 0)
    except UnicodeDecodeError as exc:
        start = exc.start
    shown = " ".join(f"{b:02x}" for b in raw[start : start + _SHOWN_BYTES])
    more = " …" if len(raw) > start + _SHOWN_BYTES else ""
    message = f"{file}: line {line} is not valid {encoding.upper()} (bytes {shown}{more})"
    guess = likely_encoding(raw, encoding)
    where = f" for source {source}" if source else ""
    if guess:
        return f"{message}; the file looks like {guess} — set `encoding: {guess}`{where}"
    return f"{message}; set the file's real `encoding`{where} or fix the file"


@dataclass(frozen=True)
class _BadLine:
    file: str  # Spark's path of the file
    block: int  # start of the split holding the line
    row: int  # monotonically_increasing_id of the line


def validate_text_encoding(
    spark: SparkSession,
    paths: list[str],
    encoding: str,
    source: str | None = None,
    display: dict[str, str] | None = None,
) -> None:
    """Raise :class:`SchemaError` naming the first undecodable line of the first bad file.

    ``paths``: the text files of one load; ``display``: Spark's file path → the path to name
    in the error (the file log's). Runs one distributed scan; nothing is collected unless a
    file is bad.
    """
    if not paths:
        return
    with _decoding_session(spark, encoding) as session:
        lines = _keyed_lines(session, paths, encoding)
        firsts = (
            lines.where("bad")
            .groupBy("file")
            .agg(F.min(F.struct("block", "row")).alias("k"))
            .collect()
        )
        if not firsts:
            return
        bad = min(_BadLine(r["file"], r["k"]["block"], r["k"]["row"]) for r in firsts)
        line, raw = _line_number_and_bytes(lines, bad)
    name = (display or {}).get(bad.file, bad.file)
    message = undecodable_line_message(name, line, raw, encoding, source)
    if len(firsts) > 1:
        message += f" ({len(firsts) - 1} more file(s) of this load do not decode either)"
    raise SchemaError(message)


def _keyed_lines(session: SparkSession, paths: list[str], encoding: str) -> DataFrame:
    """Every line with its file, position key (split start, row id), raw bytes and a bad flag."""
    raw = F.col("value").cast("binary")
    return session.read.text(paths).select(
        F.col("_metadata.file_path").alias("file"),
        F.input_file_block_start().alias("block"),
        F.monotonically_increasing_id().alias("row"),
        raw.alias("raw"),
        _undecodable_expr(raw, encoding).alias("bad"),
    )


def _undecodable_expr(raw: Column, encoding: str) -> Column:
    """True for a line whose raw bytes are not valid text in ``encoding``."""
    if is_utf8(encoding):
        return ~F.is_valid_utf8(raw.cast("string"))
    replaced = F.decode(raw, encoding).contains(_REPLACEMENT)
    try:
        encoded_replacement = _REPLACEMENT.encode(encoding)
    except UnicodeEncodeError:
        return replaced
    # GB18030 can encode U+FFFD itself: such a line is taken as meant (rare, documented)
    return replaced & ~F.contains(raw, F.lit(bytearray(encoded_replacement)))


def _line_number_and_bytes(lines: DataFrame, bad: _BadLine) -> tuple[int, bytes]:
    """1-based line number of ``bad`` in its file and the line's first bytes (error path only)."""
    in_file = lines.where(F.col("file") == bad.file)
    key = F.struct("block", "row")
    bad_key = F.struct(
        F.lit(bad.block).cast("long").alias("block"), F.lit(bad.row).cast("long").alias("row")
    )
    before = in_file.where(key < bad_key).count()
    sample = (
        in_file.where((F.col("block") == bad.block) & (F.col("row") == bad.row))
        .select(F.substring("raw", 1, _SAMPLE_BYTES).alias("raw"))
        .first()
    )
    return before + 1, bytes(sample["raw"]) if sample else b""


@contextmanager
def _decoding_session(spark: SparkSession, encoding: str) -> Iterator[SparkSession]:
    """``spark`` for UTF-8; else a sibling session whose ``decode`` accepts any Java charset
    and replaces undecodable bytes (the shared session's settings stay untouched)."""
    if is_utf8(encoding):
        yield spark
        return
    session = spark.newSession()
    session.conf.set(_JAVA_CHARSETS, "true")
    session.conf.set(_CODING_ERRORS, "true")
    yield session


def allow_java_charsets(spark: SparkSession, encoding: str) -> None:
    """Let Spark read text in ``encoding`` when it is not UTF-8 (GBK, GB18030, Big5).

    Spark 4 accepts only the UTF/ISO charsets in the CSV reader's ``encoding`` and in
    ``decode`` unless ``spark.sql.legacy.javaCharsets`` is on. The setting is checked when a
    plan is executed, so it is turned on for the session and left on: it only widens the
    charsets accepted and changes nothing for UTF-8 data.
    """
    if not is_utf8(encoding) and spark.conf.get(_JAVA_CHARSETS, "false") != "true":
        spark.conf.set(_JAVA_CHARSETS, "true")
