"""Issue #18 through the pages: the dispatch desk lists returns awaiting the dispatcher, the ticket
page closes a return, dispatches with a lead (主办/协办 shown), releases a 协办 and corrects the
grade; conduct / 重复件 flags are shown."""

from __future__ import annotations

from console_helpers import DEPT_A, DEPT_B
from test_flow import VAGUE, file_walk_in, status_of, sub_of
from web_helpers import Web


def _post(web: Web, path: str, page: str, **data):
    data["csrf_token"] = web.csrf(page)
    return web.client.post(path, data=data, follow_redirects=False)


def _handle(web: Web, handler: str, so: int, number: str) -> None:
    web.login(handler)
    page = f"/tickets/{number}"
    assert _post(web, f"/suborders/{so}/accept", page).status_code == 303
    assert _post(web, f"/suborders/{so}/reply", page, text="已办理完毕").status_code == 303


def test_a_return_is_closed_from_the_desk_and_ticket_page(web: Web):
    number = file_walk_in(web)
    page = f"/tickets/{number}"
    r = _post(web, f"{page}/dispatch", page, departments=[DEPT_A, DEPT_B], lead=DEPT_A)
    assert r.status_code == 303, r.text
    html = web.client.get(page).text
    assert "主办" in html and "协办" in html
    web.login("handler_b")
    so_b = sub_of(web, number, DEPT_B)
    assert _post(web, f"/suborders/{so_b}/return", page, reason="不属于税务职责").status_code == 303
    _handle(web, "handler", sub_of(web, number, DEPT_A), number)
    assert status_of(web, number) == "dispatched"
    web.login("dispatcher")
    desk = web.client.get("/dispatch").text
    assert "部门退回待处理" in desk and number in desk and "不属于税务职责" in desk
    html = web.client.get(page).text
    assert "退回待处理" in html and "关闭退回件" in html
    r = _post(web, f"/suborders/{so_b}/close-return", page, reason="")
    assert r.status_code == 422 and "关闭理由不能为空" in r.text
    r = _post(web, f"/suborders/{so_b}/close-return", page, reason="市监局答复已覆盖全部诉求")
    assert r.status_code == 303, r.text
    assert status_of(web, number) == "resolved"
    assert "部门退回待处理" not in web.client.get("/dispatch").text


def test_release_an_assisting_department_from_the_ticket_page(web: Web):
    number = file_walk_in(web)
    page = f"/tickets/{number}"
    r = _post(web, f"{page}/dispatch", page, departments=[DEPT_A, DEPT_B], lead=DEPT_A)
    assert r.status_code == 303
    _handle(web, "handler", sub_of(web, number, DEPT_A), number)
    web.login("dispatcher")
    assert "解除协办" in web.client.get(page).text
    r = _post(web, f"/suborders/{sub_of(web, number, DEPT_B)}/release", page, reason="无需参与")
    assert r.status_code == 303, r.text
    assert status_of(web, number) == "resolved"


def test_correct_the_grade_from_the_ticket_page(web: Web):
    number = file_walk_in(web)
    page = f"/tickets/{number}"
    html = web.client.get(page).text
    assert "更正类别 / 紧急程度" in html
    r = _post(web, f"{page}/reclassify", page, category="complaint", urgency="critical", reason="")
    assert r.status_code == 422 and "更正理由不能为空" in r.text
    r = _post(
        web, f"{page}/reclassify", page, category="complaint", urgency="critical", reason="涉及停产"
    )
    assert r.status_code == 303, r.text
    html = web.client.get(page).text
    assert "更正类别/紧急程度" in html and "涉及停产" in html
    web.login("handler")  # no correcting for a department handler
    r = web.client.post(
        f"{page}/reclassify",
        data={"csrf_token": web.csrf("/search"), "urgency": "general", "reason": "x"},
        follow_redirects=False,
    )
    assert r.status_code in (403, 404)


def test_conduct_and_duplicate_flags_on_the_pages(web: Web):
    number = file_walk_in(
        web, content="市场监督管理局窗口人员故意刁难，还暗示请吃饭", submitter_phone="13700001111"
    )
    html = web.client.get(f"/tickets/{number}").text
    assert "作风投诉" in html and "被投诉部门" in html
    first = file_walk_in(web, content=VAGUE + "路灯坏了很久", submitter_phone="13700002222")
    again = file_walk_in(web, content=VAGUE + "路灯坏了很久了", submitter_phone="13700002222")
    html = web.client.get(f"/tickets/{again}").text
    assert "重复件" in html and first in html
