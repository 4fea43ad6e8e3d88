"""The shipped cdr_custom.conf writes what callcenter/ami/reconcile.py reads.

Asterisk 22.10's cdr_custom (over res_cdrel_custom) wrote no file at all for the legacy
`[mappings]` line this project shipped before; these tests pin the advanced format: the column
list against reconcile.COLUMNS, times as epoch seconds, CDR variables the dialplan really sets, and
a line in the form that module writes (every value quoted, inner quotes doubled) read back.
"""

from __future__ import annotations

import re
import shutil

import pytest

from callcenter.ami.reconcile import COLUMNS, call_from_rows, read_rows
from callcenter.asterisk_config import (
    CDR_BUILTIN,
    CDR_FILE,
    CDR_TIMES,
    TEMPLATES,
    AsteriskConfigError,
    cdr_columns,
    cdr_fields,
    check_cdr_template,
    render,
)

SHIPPED = (TEMPLATES / "cdr_custom.conf").read_text(encoding="utf-8")
# what this project shipped until Asterisk 22.10 was found to write nothing with it
LEGACY = (
    "[mappings]\n"
    'dxe.csv => "${CDR(linkedid)}","${CDR(uniqueid)}","${CDR(start,u)}"\n'  # shortened
)


def test_shipped_columns_are_the_ones_reconcile_reads_in_order():
    assert CDR_FILE in cdr_fields(SHIPPED)  # the section name is the file reconcile opens
    assert tuple(name for name, _ in cdr_columns(SHIPPED)) == COLUMNS
    check_cdr_template(SHIPPED)


def test_shipped_times_are_epoch_seconds_and_variables_are_uservars():
    quals = dict(cdr_columns(SHIPPED))
    assert all("int64" in quals[t] for t in CDR_TIMES)
    variables = [n for n in COLUMNS if n not in CDR_BUILTIN]
    assert variables == [
        "ivr_path",
        "ivr_category",
        "ivr_option",
        "ivr_result",
        "dxe_queue",
        "recording",
        "vm_status",
    ]
    assert all(quals[v] == {"uservar"} for v in variables)


def test_every_variable_column_is_set_by_the_dialplan():
    """A uservar the dialplan never sets is a column that is always empty (a typo, a rename)."""
    ext = (TEMPLATES / "extensions.conf").read_text(encoding="utf-8")
    set_by_dialplan = set(re.findall(r"Set\(CDR\((\w+)\)=", ext))
    for name, quals in cdr_columns(SHIPPED):
        if "uservar" in quals:
            assert name in set_by_dialplan, name


def _as_asterisk_writes(values: dict[str, str]) -> str:
    """One line as res_cdrel_custom's DSV writer makes it with quoting_method = all: every value
    in double quotes, a double quote inside doubled, fields in the config's order."""
    order = [name for name, _ in cdr_columns(SHIPPED)]
    return ",".join('"' + values.get(n, "").replace('"', '""') + '"' for n in order) + "\n"


def test_a_line_in_the_written_form_is_read_back_by_name(tmp_path):
    path = tmp_path / CDR_FILE
    base = {
        "linkedid": "1700000000.1",
        "channel": "Local/12345@dxe-inbound-00000001;2",
        "src": "13800138000",
        "clid": '"王五" <13800138000>',  # quotes inside: doubled by Asterisk, undone by csv
        "dcontext": "dxe-inbound",
        "disposition": "ANSWERED",
    }
    menu = base | {
        "uniqueid": "1700000000.1",
        "start": "1700000000",
        "answer": "1700000000",
        "end": "1700000010",
        "duration": "10",
        "billsec": "10",
        "lastapp": "AGI",
        "ivr_path": "1",
        "ivr_option": "enterprise",
        "ivr_result": "queue",
        "dxe_queue": "dxe-enterprise",
    }
    unanswered = base | {
        "uniqueid": "1700000000.2",
        "dstchannel": "Local/8001@dxe-test-agents-0000000a;1",
        "start": "1700000010",
        "answer": "0",  # int64 of an unset timeval: never answered
        "end": "1700000040",
        "duration": "30",
        "billsec": "0",
        "lastapp": "Queue",
        "disposition": "NO ANSWER",
        "dxe_queue": "dxe-enterprise",
    }
    path.write_text(_as_asterisk_writes(menu) + _as_asterisk_writes(unanswered), encoding="utf-8")
    rows = read_rows(path, 1_699_999_000, 1_700_001_000)
    assert [r["uniqueid"] for r in rows] == ["1700000000.1", "1700000000.2"]
    assert rows[0]["clid"] == '"王五" <13800138000>'
    assert (rows[0]["ivr_result"], rows[0]["dxe_queue"], rows[0]["end"]) == (
        "queue",
        "dxe-enterprise",
        "1700000010",
    )
    call = call_from_rows(rows)
    assert (call["caller_name"], call["started"], call["ended"]) == ("王五", 1.7e9, 1_700_000_040)
    assert call["answered"] is None and call["disposition"] == "abandoned"
    assert call["queued_abandon"] is True


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (LEGACY, "legacy"),
        (SHIPPED.replace("linkedid, uniqueid,", "uniqueid, linkedid,"), "differ"),
        (SHIPPED.replace(", vm_status(uservar)", ""), "differ"),
        (SHIPPED.replace("end(int64)", "end"), "end\\(int64\\)"),
        (SHIPPED.replace("dxe_queue(uservar)", "dxe_queue"), "dxe_queue\\(uservar\\)"),
        (SHIPPED.replace("[dxe.csv]", "[other.csv]"), "differ"),
    ],
)
def test_a_template_reconcile_could_not_read_is_refused(text, says):
    with pytest.raises(AsteriskConfigError, match=says):
        check_cdr_template(text)


def test_write_config_refuses_a_diverged_cdr_template(settings, tmp_path):
    from pydantic import SecretStr

    tpl = tmp_path / "tpl"
    shutil.copytree(TEMPLATES, tpl)
    srv = settings.asterisk[0].model_copy(
        update={"secret": SecretStr("abc123"), "voicemail_pin": SecretStr("4321")}
    )
    s2 = settings.model_copy(update={"asterisk": [srv]})
    text, _ = render(s2, templates=tpl)["cdr_custom.conf"]
    assert text == SHIPPED  # copied as is
    (tpl / "cdr_custom.conf").write_text(SHIPPED.replace("src, clid", "clid, src"))
    with pytest.raises(AsteriskConfigError, match="differ"):
        render(s2, templates=tpl)
