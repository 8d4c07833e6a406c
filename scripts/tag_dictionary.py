"""Write the tag data dictionary (docs/tag_dictionary.md) from conf/tags/ — no Spark needed.

.venv/bin/python scripts/tag_dictionary.py [--conf-dir conf] [--out docs/tag_dictionary.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from profilehouse.gold.dictionary import tag_dictionary_markdown  # noqa: E402
from profilehouse.gold.feature_config import load_feature_config  # noqa: E402
from profilehouse.gold.tag_registry import load_tag_registry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conf-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tag_dictionary.md")
    args = parser.parse_args()
    features = load_feature_config(args.conf_dir)
    registry = load_tag_registry(features.schema, args.conf_dir)
    args.out.write_text(tag_dictionary_markdown(registry), encoding="utf-8")
    print(f"{len(registry.tags)} tags → {args.out}")


if __name__ == "__main__":
    main()
