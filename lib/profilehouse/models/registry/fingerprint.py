"""A trained model's fingerprint: one hash over what it was trained with and what was saved.

Two trainings on the same inputs with the same parameters give the same fingerprint even though
Spark ML writes each save differently: a save's metadata carries its time, every estimator gets a
random uid (in folder names and metadata) and every part file a random name. Those are
normalised away; hidden files (names starting with ``.`` or ``_``, as Hadoop's ``.crc``
checksums and ``_SUCCESS`` markers) are skipped.
Everything else — model data, the parameters, features (in order), training window and input
table versions — counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

# Spark ML's random uids: ``LogisticRegression_9f4909c98de2`` (class name, 12 hex digits).
_UID = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]*)_[0-9a-f]{12}(?![A-Za-z0-9])")
# Spark's part files: ``part-00000-<uuid>-c000.snappy.parquet``.
_PART = re.compile(r"^(part-\d+)-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}(-c\d+)?")
_SAVE_TIME_KEYS = ("timestamp",)


def model_fingerprint(
    artifact_dir: str | Path,
    *,
    kind: str,
    params: Mapping[str, object],
    features: Sequence[str],
    training_window: tuple[dt.date, dt.date],
    input_versions: Mapping[str, int],
) -> str:
    """Hex SHA-256 of the training inputs and the saved model's normalised files."""
    digest = hashlib.sha256()
    digest.update(_canonical_json(_inputs(kind, params, features, training_window, input_versions)))
    for name, content in sorted(normalised_files(Path(artifact_dir))):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def normalised_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """(normalised relative path, normalised content) of every file under ``root`` that is not
    a hidden Hadoop file."""
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not any(_hidden(part) for part in relative.parts):
            yield _normalised_path(relative), _normalised_content(relative, path.read_bytes())


def _inputs(
    kind: str,
    params: Mapping[str, object],
    features: Sequence[str],
    training_window: tuple[dt.date, dt.date],
    input_versions: Mapping[str, int],
) -> dict[str, object]:
    return {
        "kind": kind,
        "params": {str(k): str(v) for k, v in params.items()},
        "features": list(features),
        "training_window": [d.isoformat() for d in training_window],
        "input_versions": {str(k): int(v) for k, v in input_versions.items()},
    }


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _normalised_path(relative: Path) -> str:
    parts = [_UID.sub(r"\1", _PART.sub(r"\1", part)) for part in relative.parts]
    return "/".join(parts)


def _normalised_content(relative: Path, content: bytes) -> bytes:
    """Spark ML metadata (JSON lines in a ``metadata`` folder) without save times and uids;
    any other file as it is."""
    if "metadata" not in relative.parts[:-1]:
        return content
    try:
        records = [json.loads(line) for line in content.decode("utf-8").splitlines() if line]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return content
    if not all(isinstance(r, dict) for r in records):
        return content
    kept = [{k: v for k, v in r.items() if k not in _SAVE_TIME_KEYS} for r in records]
    return _UID.sub(r"\1", "\n".join(_canonical_json(r).decode() for r in kept)).encode()
