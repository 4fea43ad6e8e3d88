"""The outside evaluation set: big and hard enough to mean something, and apart from training.

ticketing/data/outside_eval.csv (reported on only) and outside_dev.csv (the split tuning may look
at) were written by another hand in other voices; see ticketing/classifier_eval.py. "Apart by
construction": training reads labelled.csv only, and no outside text, nor a light rewording of one
(char-3-gram Jaccard >= 0.8), is in labelled.csv or fresh.csv.
"""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import ticketing.classifier
from ticketing.classifier import (
    DEPARTMENTS,
    FRESH_PATH,
    get_classifier,
    load_examples,
)
from ticketing.classifier_eval import (
    EVALUATION_PATHS,
    NEAR_CONTAINMENT,
    NEAR_DUPLICATE,
    OUTSIDE_DEV_PATH,
    OUTSIDE_EVAL_PATH,
    THIRD_DEV_PATH,
    UNSEEN_DEV_PATH,
    UNSEEN_TEST_PATH,
    char3,
    containment,
    evaluate_outside,
    jaccard,
    load_outside,
    near_duplicates,
)
from ticketing.models import Channel


@pytest.fixture(scope="module")
def outside() -> list:
    return load_outside(OUTSIDE_EVAL_PATH)


@pytest.fixture(scope="module")
def dev() -> list:
    return load_outside(OUTSIDE_DEV_PATH)


def test_eval_set_is_large_and_hard(outside: list) -> None:
    n = len(outside)
    assert n >= 300
    assert sum(r.example.urgency == "critical" for r in outside) / n >= 0.20
    assert sum(bool(r.trap) for r in outside) / n >= 0.25
    assert {r.channel for r in outside} == {c.value for c in Channel}  # all seven channels
    assert {r.example.department for r in outside} == set(DEPARTMENTS)
    traps = Counter(r.trap for r in outside if r.trap)
    assert set(traps) == {"cat", "dept", "loud", "calm"} and min(traps.values()) >= 10
    texts = [r.example.text for r in outside]
    assert len(set(texts)) == n


def test_styles_of_other_writers_are_present(outside: list) -> None:
    """Dialect fillers, unpunctuated transcripts, long letters and one-line posts all occur."""
    texts = [r.example.text for r in outside]
    dialect = [t for t in texts if any(w in t for w in ("冇得", "么样", "晓得", "搞么事", "蛮"))]
    assert len(dialect) >= 30
    bare = [t for t in texts if " " in t and not any(p in t for p in "，。？！,")]
    assert len(bare) >= 60  # ASR-like: words separated by pauses, no punctuation
    assert sum(len(t) >= 60 for t in texts) >= 20  # formal letters (60-114 characters)
    posts = [r.example.text for r in outside if r.channel == "opinion"]
    assert len(posts) >= 30


def test_no_text_or_near_duplicate_crosses_into_training(outside: list, dev: list) -> None:
    training = [e.text for e in load_examples()]
    fresh = [e.text for e in load_examples(FRESH_PATH)]
    ev = [r.example.text for r in outside]
    dv = [r.example.text for r in dev]
    for other in (training, fresh):
        assert not set(ev + dv) & set(other)
        assert near_duplicates(ev + dv, other) == []
    assert not set(ev) & set(dv)
    assert near_duplicates(ev, dv) == []


def test_the_near_duplicate_check_can_fail() -> None:
    """A light rewording is caught, a different matter in the same style is not."""
    a = "喂 那个我问一哈 我屋里伢在赤壁读书 户口要迁过来 要带么东西克派出所办 我不晓得"
    reworded = "喂 那个我问一下 我屋里伢在赤壁读书 户口要迁过来 要带么东西克派出所办 我不晓得"
    other = "喂 那个我问一哈 我屋里老人要办身份证 腿脚不方便 能不能上门 我不晓得"
    assert jaccard(char3(a), char3(reworded)) >= NEAR_DUPLICATE
    similarity = max(jaccard(char3(a), char3(reworded)), containment(char3(a), char3(reworded)))
    assert near_duplicates([reworded], [a, other]) == [
        (reworded, a, pytest.approx(similarity, abs=1e-3))
    ]
    assert near_duplicates([other], [a]) == []


def test_the_leak_check_sees_through_punctuation_and_pasting() -> None:
    """The same text punctuated differently is equal; a text pasted inside a longer one is
    caught by containment though their Jaccard is low; short look-alike questions are not."""
    a = "喂 我们厂里冇得电了 从早上八点停到现在 三条线全部停了"
    punctuated = "喂，我们厂里冇得电了，从早上八点停到现在，三条线全部停了。"
    assert near_duplicates([punctuated], [a]) == [(punctuated, a, 1.0)]
    pasted = (
        "网页留言：" + a + "，另外想问一下园区的食堂什么时候开业，员工吃饭要走很远，希望尽快安排"
    )
    assert jaccard(char3(a), char3(pasted)) < NEAR_DUPLICATE
    assert containment(char3(a), char3(pasted)) >= NEAR_CONTAINMENT
    assert near_duplicates([pasted], [a]) != []
    assert near_duplicates(["营业执照怎么办"], ["营业执照怎么办理，要带什么"]) == []


def test_training_reads_only_the_labelled_set(outside: list) -> None:
    src = inspect.getsource(ticketing.classifier)
    assert "outside" not in src  # the model module never names the outside sets
    clf = get_classifier()
    assert clf.n_examples == len(load_examples())


def test_bad_outside_row_is_rejected_with_its_line(tmp_path: Path) -> None:
    p = tmp_path / "o.csv"
    head = "text,category,urgency,department,channel,trap\n"
    p.write_text(
        head
        + "营业执照怎么办,government,general,SCJG,hotline,\n"
        + "发票,government,general,SWJ,fax,\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"o.csv:3: bad channel 'fax'"):
        load_outside(p)
    p.write_text(head + "发票,government,general,SWJ,web,maybe\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"o.csv:2: bad trap"):
        load_outside(p)
    p.write_text(
        "text,category,urgency,department\n发票,government,general,SWJ\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="header"):
        load_outside(p)


def test_floors_on_text_the_model_never_saw() -> None:
    """Floors under the figures measured by bench/classifier.py on outside_eval.csv (issue 13,
    fifth round: category 0.905, urgency 0.837, department 0.778, 紧要 recall 0.92 at precision
    0.81; fourth round 0.908 / 0.830 / 0.768, 0.94 at 0.79; before issue 13: 0.85 / 0.74 / 0.72,
    recall 0.71): a change that loses the critical matters again fails here."""
    r = evaluate_outside(OUTSIDE_EVAL_PATH)
    assert r["category"]["accuracy"] >= 0.88
    assert r["urgency"]["accuracy"] >= 0.81
    assert r["urgency"]["critical_recall"] >= 0.88
    assert r["urgency"]["critical_precision"] >= 0.75
    assert r["department"]["accuracy"] >= 0.74
    # the model beats the bare keyword rule it is layered over
    assert r["urgency"]["accuracy"] > r["urgency_keyword_baseline"]["accuracy"]
    for head in ("category", "urgency", "department"):
        table = r[head]["confusion"]
        assert sum(sum(row.values()) for row in table.values()) == r["n"]


# --- the unseen set (issue 13, second round) -----------------------------------------------------


@pytest.fixture(scope="module")
def unseen() -> tuple[list, list]:
    return load_outside(UNSEEN_DEV_PATH), load_outside(UNSEEN_TEST_PATH)


def test_unseen_set_is_large_and_hard(unseen: tuple[list, list]) -> None:
    dev, test = unseen
    rows = dev + test
    n = len(rows)
    assert n >= 300 and min(len(dev), len(test)) >= 150
    for part in (dev, test, rows):
        assert sum(r.example.urgency == "critical" for r in part) / len(part) >= 0.15
        assert sum(bool(r.trap) for r in part) / len(part) >= 0.20
        assert {r.channel for r in part} == {c.value for c in Channel}
    assert {r.example.department for r in rows} == set(DEPARTMENTS)
    traps = Counter(r.trap for r in rows if r.trap)
    assert {"cat", "loud", "calm", "neg", "past"} <= set(traps)
    assert len({r.example.text for r in rows}) == n
    texts = [r.example.text for r in rows]
    assert sum(any(w in t for w in ("冇得", "么样", "晓得", "搞么事")) for t in texts) >= 30
    assert sum(" " in t and not any(p in t for p in "，。？！,") for t in texts) >= 60
    assert sum(len(t) >= 60 for t in texts) >= 20
    assert sum(r.channel == "opinion" for r in rows) >= 30


def test_no_evaluation_text_leaks_into_training_or_across_sets() -> None:
    """Every evaluation set against the training data (labelled.csv and fresh.csv) by normalised
    text, Jaccard and containment; the unseen set against the earlier outside sets; its dev half
    against its test half; the third dev set against all the earlier sets."""
    training = [e.text for e in load_examples()] + [e.text for e in load_examples(FRESH_PATH)]
    sets = {p.stem: [r.example.text for r in load_outside(p)] for p in EVALUATION_PATHS}
    for texts in sets.values():
        assert near_duplicates(texts, training) == []
    unseen = sets["unseen_dev"] + sets["unseen_test"]
    assert near_duplicates(unseen, sets["outside_eval"] + sets["outside_dev"]) == []
    assert near_duplicates(sets["unseen_dev"], sets["unseen_test"]) == []
    earlier = [t for name, texts in sets.items() if name != "third_dev" for t in texts]
    assert near_duplicates(sets["third_dev"], earlier) == []


def test_training_never_opens_an_evaluation_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apart by construction: training a model opens labelled.csv and nothing under data/ that
    is an evaluation set (watched at Path.open, which load_examples uses)."""
    opened: list[str] = []
    real_open = Path.open

    def spy(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    ticketing.classifier._trained.cache_clear()
    try:
        ticketing.classifier.get_classifier()
    finally:
        ticketing.classifier._trained.cache_clear()
    assert "labelled.csv" in opened
    assert not {p.name for p in EVALUATION_PATHS} & set(opened)


def test_floors_on_the_unseen_set() -> None:
    """Floors under the figures bench/classifier.py measured on unseen_test.csv, the half never
    looked at (see the module docstring of ticketing/classifier_eval.py): issue 13, fifth round,
    category 0.886, urgency 0.832, 紧要 recall 0.94 at precision 0.79; fourth round 0.886, 0.832,
    0.97 at 0.74; second round 0.88, 0.80, 0.97 at 0.69; before it 0.85, 0.78, 0.94 at 0.67."""
    r = evaluate_outside(UNSEEN_TEST_PATH)
    assert r["category"]["accuracy"] >= 0.86
    assert r["urgency"]["accuracy"] >= 0.81
    assert r["urgency"]["critical_recall"] >= 0.9
    assert r["urgency"]["critical_precision"] >= 0.75
    assert r["urgency"]["accuracy"] > r["urgency_keyword_baseline"]["accuracy"]


# --- the third dev set (issue 13, third round) ---------------------------------------------------


def test_third_dev_set_is_large_hard_and_in_every_voice() -> None:
    """third_dev.csv, written blind by another hand: big enough to read per head, every channel,
    department and trap kind present, 紧要 and traps at the shares it was written to."""
    rows = load_outside(THIRD_DEV_PATH)
    n = len(rows)
    assert n >= 240
    assert len({r.example.text for r in rows}) == n
    assert 0.18 <= sum(r.example.urgency == "critical" for r in rows) / n <= 0.27
    assert 0.20 <= sum(bool(r.trap) for r in rows) / n <= 0.33
    assert {r.channel for r in rows} == {c.value for c in Channel}
    assert {r.example.department for r in rows} == set(DEPARTMENTS)
    assert {r.example.category for r in rows} == {"enterprise", "government", "complaint"}
    assert {r.trap for r in rows if r.trap} == {"cat", "dept", "loud", "calm", "neg", "past"}
    texts = [r.example.text for r in rows]
    assert sum(any(w in t for w in ("冇得", "么样", "晓得", "搞么事")) for t in texts) >= 15
    assert sum(" " in t and not any(p in t for p in "，。？！,") for t in texts) >= 30
    assert sum(len(t) >= 100 for t in texts) >= 5 and min(len(t) for t in texts) <= 15
