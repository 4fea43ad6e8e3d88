"""config.logging: JSON lines, console renderer, and phone numbers masked everywhere."""

from __future__ import annotations

import io
import json
import logging

import structlog

from config.logging import configure_logging, mask_phone_processor, mask_phones
from config.settings import Settings


def test_mask_phones_in_text():
    assert mask_phones("+8613812341234") == "+86138****1234"
    assert mask_phones("13812341234") == "138****1234"
    assert (
        mask_phones("来电13812341234，回拨+8613912345678。")
        == "来电138****1234，回拨+86139****5678。"
    )
    assert mask_phones("landline +8671512345001") == "landline +86715****5001"


def test_mask_leaves_other_numbers_alone():
    for text in (
        "DXE-20261125-000123",  # ticket number
        "91350100M000100Y43",  # USCC
        "913501001381234123X",  # digits inside a longer code
        "2026-11-25T01:47:23.216030",
        "id 12345",
        "1381234123",  # 10 digits
        "123812341234",  # 12 digits
    ):
        assert mask_phones(text) == text


def test_processor_masks_nested_values_keys_and_ints():
    event = {
        "event": "sms to 13812341234",
        "to": "+8613812341234",
        "nested": {"list": ["x", "13912345678", {"deep": "+8613700001111"}], "n": 13812341234},
        "13800001111": "as key",
        "count": 5,
        "ok": True,
    }
    out = mask_phone_processor(None, "info", dict(event))
    flat = json.dumps(out, ensure_ascii=False)
    for raw in ("13812341234", "13912345678", "13700001111", "13800001111"):
        assert raw not in flat
    assert out["count"] == 5 and out["ok"] is True
    assert out["to"] == "+86138****1234"


def test_json_lines_with_masking_for_structlog_and_stdlib():
    stream = io.StringIO()
    configure_logging(Settings(log_json=True), stream=stream)
    structlog.get_logger("t").info("sent", to="+8613812341234", body="请回电13812341234")
    logging.getLogger("plain.stdlib").warning("caller %s hung up", "13912345678")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "sent" and lines[0]["to"] == "+86138****1234"
    assert lines[0]["body"] == "请回电138****1234" and lines[0]["level"] == "info"
    assert "timestamp" in lines[0]
    assert lines[1]["event"] == "caller 139****5678 hung up"
    assert "13912345678" not in stream.getvalue()


def test_console_renderer_when_json_off():
    stream = io.StringIO()
    configure_logging(Settings(log_json=False), stream=stream)
    structlog.get_logger("t").info("hello", phone="13812341234")
    out = stream.getvalue()
    assert "hello" in out and "138****1234" in out and not out.startswith("{")
    configure_logging(Settings(log_json=True), stream=io.StringIO())


def test_rq_chatter_is_left_out_at_info_but_not_its_failures_nor_at_debug():
    """rq's per-job and per-minute INFO lines buried the first admin's password on `make run`."""
    stream = io.StringIO()
    configure_logging(Settings(log_json=True), stream=stream)
    logging.getLogger("rq.worker").info("dxe:default: Job OK (x)")
    logging.getLogger("rq.cron").info("Enqueued job run_warning_scan to queue dxe:default")
    logging.getLogger("rq.worker").error("dxe:notify: job failed")
    structlog.get_logger("callcenter.run").info("first_admin_created")
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["dxe:notify: job failed", "first_admin_created"]
    stream = io.StringIO()
    configure_logging(Settings(log_json=True, log_level="DEBUG"), stream=stream)
    logging.getLogger("rq.worker").info("dxe:default: Job OK (x)")
    assert "Job OK" in stream.getvalue()
    configure_logging(Settings(log_json=True), stream=io.StringIO())
