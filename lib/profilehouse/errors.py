"""Exception classes raised by the library, one per kind of failure."""

from __future__ import annotations

# PySpark's loggers that print a JSON error record (with a Java trace) for every analysis error.
SPARK_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def first_error_line(text: str) -> str:
    """First line of a (Py4J-wrapped) JVM error that is not Py4J's or Python's preamble."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("An error occurred", "Traceback", "JVM stacktrace")):
            return line.removeprefix("py4j.protocol.Py4JJavaError: ")
    return "(no message)"


class ProfilehouseError(Exception):
    """Base class for every error this library raises on purpose."""


class ConfigError(ProfilehouseError):
    """A config file is missing, unreadable or invalid.

    ``problems`` lists every problem found (all are reported at once), each naming the key path,
    the bad value and what is expected.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config file {path}:\n{lines}")


class DemoOnlyError(ProfilehouseError):
    """A demo-only action (generating data, resetting or deleting tables) was asked of an
    environment profile that is not a demo profile (``demo: false``)."""


class SetupError(ProfilehouseError):
    """The runtime is not set up (e.g. Delta jars not fetched, Java missing)."""


class SchemaError(ProfilehouseError):
    """Input data does not have the columns or types a stage needs."""


class SecretError(ProfilehouseError):
    """A secret (e.g. the PII token key) is missing, unreadable or too weak.

    Messages name where the secret is looked for, never its value.
    """
