"""Chinese characters as Spark expressions: traditional → simplified, and a homophone key.

Both are one ``translate`` (character for character, a built-in expression — no UDF), with
tables built once on the driver from published data:

- traditional → simplified from OpenCC's ``TSCharacters`` (the first simplified form of each
  traditional character), shipped with the ``opencc-purepy`` package;
- the homophone key replaces each character of the GB 2312 set (the 6,763 characters names
  are written with) by a representative of its toneless pinyin reading (pypinyin's data), so
  '张伟' and '张卫' share the key '张伟'-like string, as do a name and its traditional form.

Characters outside the tables are kept as they are, so non-Chinese text passes unchanged.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

from pyspark.sql import Column
from pyspark.sql import functions as F


@functools.cache
def traditional_to_simplified_table() -> tuple[str, str]:
    """``(traditional, simplified)``: equal-length strings for ``translate``."""
    text = resources.files("opencc_purepy").joinpath("dicts/TSCharacters.txt").read_text("utf-8")
    source, target = [], []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        traditional, simplified = parts[0], parts[1].split(" ")[0]
        if len(traditional) == 1 and len(simplified) == 1 and traditional != simplified:
            source.append(traditional)
            target.append(simplified)
    return "".join(source), "".join(target)


def _toneless(reading: str) -> str:
    """'zhāng' → 'zhang', 'lǜ' → 'lv'."""
    plain = unicodedata.normalize("NFD", reading.replace("ü", "v"))
    return "".join(c for c in plain if not unicodedata.combining(c))


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def homophone_table() -> tuple[str, str]:
    """``(characters, representatives)``: each GB 2312 character → the smallest character
    with the same first toneless reading."""
    from pypinyin.pinyin_dict import pinyin_dict

    reading = {}
    for code, readings in pinyin_dict.items():
        char = chr(code)
        if "\u4e00" <= char <= "\u9fff" and _in_gb2312(char):
            reading[char] = _toneless(readings.split(",")[0])
    representative: dict[str, str] = {}
    for char in sorted(reading):
        representative.setdefault(reading[char], char)
    pairs = [(c, representative[r]) for c, r in sorted(reading.items())]
    pairs = [(c, rep) for c, rep in pairs if c != rep]
    return "".join(c for c, _ in pairs), "".join(rep for _, rep in pairs)


def simplified_expr(col: Column) -> Column:
    """``col`` with traditional characters replaced by their simplified forms."""
    source, target = traditional_to_simplified_table()
    return F.translate(col, source, target)


def homophone_key_expr(col: Column) -> Column:
    """``col`` simplified, each character replaced by its reading's representative."""
    source, target = homophone_table()
    return F.translate(simplified_expr(col), source, target)
