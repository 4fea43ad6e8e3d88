"""The enterprise profile in a real Chromium against `callcenter run` (issue #12): a dispatcher
files a new enterprise from the 一企一档 lookup and sees its derived size band, the policies that
fit it and its push log; the page is photographed at 1366×768 (tests/e2e/artifacts)."""

from __future__ import annotations

import sqlite3

import pytest
from e2e_helpers import shot

from ticketing.uscc import build_uscc

pytestmark = pytest.mark.e2e
USCC = build_uscc("20261207")


def test_dispatcher_files_and_edits_an_enterprise_profile(page_for, server):
    page = page_for("dispatcher")
    page.goto(f"{server.url}/enterprises?uscc={USCC}")
    form = page.locator("#new-profile")
    form.locator("input[name=name]").fill("赤壁市青砖茶业有限公司")
    form.locator("input[name=industry_code]").fill("C1530")
    form.locator("input[name=employees]").fill("320")
    form.locator("input[name=revenue]").fill("8600")
    form.locator("select[name=region]").select_option("赵李桥镇")
    form.locator("input[name=tags]").fill("外贸、农业产业化")
    form.locator("input[name=push_mobile]").fill("13972001234")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/enterprises/{USCC}?saved=1")
    # 工业 中型: ≥300 人 and ≥2000 万元 (大型 needs ≥1000 人 and ≥40000 万元)
    assert page.locator("#size-band").inner_text() == "中型"
    shot(page, "policy_profile")
    with sqlite3.connect(server.data_dir / "callcenter.db") as c:
        band, region = c.execute(
            "SELECT size_band, region FROM enterprise WHERE uscc = ?", (USCC,)
        ).fetchone()
        runs = c.execute("SELECT count(*) FROM policy_push_run").fetchone()[0]
    assert (band, region) == ("medium", "赵李桥镇") and runs == 1
