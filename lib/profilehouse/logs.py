"""Progress messages through Python's ``logging``.

Every module logs to ``logging.getLogger(__name__)``, all under the ``profilehouse`` logger.
Library code never configures handlers: a job (through :func:`profilehouse.cli.run_job`) or a
script calls :func:`log_to_console` once, and the messages come out on stderr as the demo has always
shown them, one per line, prefixed by the time (tables indented to stay aligned). Anything that
embeds the library (a notebook, an orchestrator, pytest's ``caplog``) sees the same records
through its own handlers.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

ROOT_LOGGER = "profilehouse"
CONSOLE_FORMAT = "%(asctime)s %(message)s"
CONSOLE_DATE_FORMAT = "%H:%M:%S"
_HANDLER_NAME = "profilehouse-console"


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message``; the lines of a multi-line message (a table) are indented under
    the first, so tables stay aligned."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT, CONSOLE_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if "\n" not in text:
            return text
        indent = " " * (len(self.formatTime(record, CONSOLE_DATE_FORMAT)) + 1)
        first, *rest = text.split("\n")
        return "\n".join([first, *(indent + line if line else line for line in rest)])


class _CurrentStderr(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a message is logged (pytest's
    capture, a notebook's redirection), not to the stream of the day it was configured."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def log_to_console(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Logger:
    """Send the ``profilehouse`` loggers' messages at ``level`` and above to ``stream``
    (default: the current stderr, so stdout stays for a job's result) as ``HH:MM:SS message``;
    idempotent (one handler however often called). Returns the ``profilehouse`` logger."""
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = _CurrentStderr() if stream is None else logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(ConsoleFormatter())
    logger.addHandler(handler)
    return logger
