"""Log lines: JSON for Cloud Logging and files, one short human line at a console."""

from __future__ import annotations

import io
import json
from datetime import datetime

import pytest

from panoptes_network import log


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_by_default_one_object_per_line(capsys, monkeypatch):
    monkeypatch.delenv(log.FORMAT_VARIABLE, raising=False)
    log.info("compress-fits: compressed", bucket_path="PAN001/x.fits", data=b"x" * 10_000)
    entry = json.loads(capsys.readouterr().out)
    assert entry["severity"] == "INFO" and entry["bucket_path"] == "PAN001/x.fits"
    assert len(entry["data"]) == 10_000  # JSON keeps every field: Cloud Logging filters on them


def test_text_is_one_short_line_per_event(capsys, monkeypatch):
    monkeypatch.setenv(log.FORMAT_VARIABLE, "text")
    log.error("record-image: dead-lettered: no such object", service="record-image",
              bucket_path="PAN001/14d3bd/20160909T081152/20160909T081226.fits",
              data=b"x" * 100_000, traceback="Traceback (most recent call last):\n  ...\n" * 100)
    log.warning("delivery failed; will retry", last_error="HTTP 500:\n" + "y" * 5_000)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" ERROR   record-image: dead-lettered: no such object "
                             "(PAN001/14d3bd/20160909T081152/20160909T081226.fits)")
    assert "Traceback" not in lines[0] and "xxx" not in lines[0]
    assert lines[1].split(" ", 1)[1].startswith("WARNING delivery failed; will retry (HTTP 500: yyy")
    assert len(lines[1]) == log.MAX_TEXT_LINE and lines[1].endswith("…")


def test_a_detail_already_in_the_message_is_not_repeated():
    entry = {"severity": "INFO", "message": "image-uploaded: routed PAN001/a.fits", "bucket_path": "PAN001/a.fits",
             "reason": "a .fits"}
    assert log.text_line(entry, datetime(2026, 1, 2, 3, 4, 5)) == \
        "03:04:05 INFO    image-uploaded: routed PAN001/a.fits (a .fits)"


@pytest.mark.parametrize("choice, stream, expected", [
    (None, Terminal(), "text"),
    (None, io.StringIO(), "json"),  # a file or a pipe: JSON
    ("json", Terminal(), "json"),
    ("text", io.StringIO(), "text"),
])
def test_the_console_format_follows_the_option_else_the_terminal(choice, stream, expected):
    assert log.console_format(choice, stream) == expected


def test_up_takes_a_log_format_option():
    from panoptes_network.stack.cli import build_parser

    assert build_parser().parse_args(["up", "--log-format", "text"]).log_format == "text"
    assert build_parser().parse_args(["up"]).log_format is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--log-format", "xml"])
