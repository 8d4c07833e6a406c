"""Progress messages go through ``logging``: the console format keeps tables aligned, and a
second configuration does not print every message twice."""

from __future__ import annotations

import io
import logging

from profilehouse.logs import log_to_console


def test_console_lines_carry_the_time_and_tables_stay_aligned() -> None:
    stream = io.StringIO()
    logger = log_to_console(logging.INFO, stream)
    log_to_console(logging.INFO, stream)  # idempotent
    try:
        logging.getLogger("profilehouse.pipeline").info("== stage: bronze")
        logging.getLogger("profilehouse.pipeline").info("source   rows\n-------  ----\na        1")
        logging.getLogger("profilehouse.pipeline").debug("not shown at INFO")
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    stamp = lines[0].split(" ", 1)[0]
    assert len(stamp) == 8 and stamp.count(":") == 2
    assert lines[0].endswith(" == stage: bronze")
    assert lines[1].index("source") == lines[2].index("---") == lines[3].index("a ")
    assert lines[1].index("source") == len(stamp) + 1


def test_messages_go_to_the_stderr_of_the_moment(capsys) -> None:
    logger = log_to_console(logging.INFO)
    try:
        logging.getLogger("profilehouse.identity").info("linkage done")
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith(" linkage done\n")
