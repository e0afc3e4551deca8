"""Log lines for operators: JSON when asked, with the reference id of the Slack request on every
line logged while it is handled, on whichever thread does the work."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.log_format import (
    JsonFormatter,
    ReferenceFilter,
    bound_reference,
    configure_logging,
    current_reference,
    reference_middleware,
)
from bot.metrics import instrument_executor
from bot.services.requests import new_reference


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """A logger ``smtpmatch.test`` whose lines go, as JSON, into the yielded buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(ReferenceFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("smtpmatch.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_extras(json_lines: io.StringIO) -> None:
    logging.getLogger("smtpmatch.test").warning(
        "Graph answered %s in %d ms", 429, 12, extra={"directory": "entra"}
    )

    [line] = lines(json_lines)
    assert line["level"] == "WARNING" and line["logger"] == "smtpmatch.test"
    assert line["message"] == "Graph answered 429 in 12 ms"
    assert line["directory"] == "entra"
    assert str(line["time"]).endswith("+00:00")
    assert "reference" not in line  # not inside a request


def test_every_line_of_a_request_carries_its_reference_even_on_worker_threads(
    json_lines: io.StringIO,
) -> None:
    log = logging.getLogger("smtpmatch.test")
    pool = instrument_executor(ThreadPoolExecutor(max_workers=2), "test-log")

    def handle() -> str:
        log.info("ack")
        # The slow part runs on the worker pool, like the report after the ack.
        return pool.submit(lambda: log.info("looked up") or current_reference()).result(10)

    with bound_reference() as reference:
        seen = handle()
    log.info("between requests")
    pool.shutdown()

    first, second, third = lines(json_lines)
    assert first["reference"] == reference and second["reference"] == reference
    assert seen == reference and len(reference) == 8
    assert "reference" not in third


def test_a_fault_shown_to_the_user_quotes_the_reference_of_the_log_lines(
    json_lines: io.StringIO,
) -> None:
    with bound_reference("ABCD1234"):
        assert new_reference() == "ABCD1234"
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("smtpmatch.test").exception("the check failed")

    [line] = lines(json_lines)
    assert line["reference"] == "ABCD1234"
    assert "RuntimeError: boom" in str(line["exception"])
    assert new_reference() != new_reference()  # outside a request: a fresh one each time


def test_the_bolt_middleware_binds_a_new_reference_per_request() -> None:
    seen = [reference_middleware(next=current_reference) for _ in range(2)]
    assert all(seen) and seen[0] != seen[1]
    assert current_reference() is None


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logging_sets_every_root_handler_to_the_chosen_format(fmt: str) -> None:
    root = logging.getLogger()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    saved = (root.handlers[:], root.level)
    root.handlers[:] = [handler]
    try:
        configure_logging(fmt)
        with bound_reference("FEEDBEEF"):
            logging.getLogger("smtpmatch.x").info("serving")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

    out = buffer.getvalue().strip()
    if fmt == "json":
        assert json.loads(out) == {
            "time": json.loads(out)["time"],
            "level": "INFO",
            "logger": "smtpmatch.x",
            "message": "serving",
            "reference": "FEEDBEEF",
        }
    else:
        assert out == "INFO smtpmatch.x: serving"
