"""The policy matcher and the size bands (issue #12 §20–21): every target kind, the boundaries."""

from __future__ import annotations

import pytest
from policy_helpers import TOMORROW, YESTERDAY, enterprise, policy, setup

from config.database import session_scope
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.knowledge.models import ArticleStatus
from ticketing.knowledge.search import local_today
from ticketing.policy_match import count_matches, matching_enterprise_ids, matching_policies
from ticketing.profiles import canonical_industry, size_band
from ticketing.uscc import build_uscc


@pytest.fixture
def plain_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "var")


# ---------------------------------------------------------------- size bands (no database)
@pytest.mark.parametrize(
    ("code", "employees", "revenue", "assets", "band"),
    [
        # 工业: 大 ≥1000 人 且 ≥40000 万元; 中 ≥300 且 ≥2000; 小 ≥20 且 ≥300; otherwise 微
        ("C1311", 1000, 40000, None, "large"),
        ("C1311", 999, 40000, None, "medium"),  # one indicator short: one band down
        ("C1311", 1000, 39999.99, None, "medium"),
        ("C1311", 300, 2000, None, "medium"),
        ("C1311", 300, 1999, None, "small"),
        ("C1311", 20, 300, None, "small"),
        ("C1311", 19, 300, None, "micro"),
        ("C1311", 20, 299, None, "micro"),
        ("B06", 1000, 40000, None, "large"),  # 采矿业 is 工业 too
        ("D44", 20, 300, None, "small"),
        # 零售业 F52: 大 ≥300 且 ≥20000; 中 ≥50 且 ≥500; 小 ≥10 且 ≥100
        ("F5211", 300, 20000, None, "large"),
        ("F5211", 50, 500, None, "medium"),
        ("F5211", 49, 500, None, "small"),
        ("F5211", 10, 100, None, "small"),
        ("F5211", 9, 100, None, "micro"),
        # 批发业 F51: 小 ≥5 且 ≥1000 — the same figures are 小 in retail but 微 in wholesale
        ("F5111", 10, 100, None, "micro"),
        ("F5111", 5, 1000, None, "small"),
        # 农林牧渔 A: revenue only
        ("A01", None, 20000, None, "large"),
        ("A01", None, 49.9, None, "micro"),
        ("A01", None, 50, None, "small"),
        # 建筑业 E: revenue and assets
        ("E47", None, 6000, 5000, "medium"),
        ("E47", None, 6000, 4999, "small"),
        # 房地产开发经营 K7010 (the longest listed prefix wins over anything shorter)
        ("K7010", None, 200000, 10000, "large"),
        ("K7010", None, 100, 2000, "small"),
        # 物业管理 K7020: 小 ≥100 人 且 ≥500 万元
        ("K7020", 100, 500, None, "small"),
        ("K7020", 99, 500, None, "micro"),
        # 软件和信息技术服务业 I65: 小 ≥10 且 ≥50
        ("I6510", 10, 50, None, "small"),
        # 租赁和商务服务业 L: employees and assets
        ("L7211", 300, None, 120000, "large"),
        # 其他未列明行业 (and no industry at all): employees only
        ("P8310", 300, None, None, "large"),
        ("P8310", 10, None, None, "small"),
        ("P8310", 9, None, None, "micro"),
        (None, 100, None, None, "medium"),
    ],
)
def test_size_band_boundaries(plain_settings, code, employees, revenue, assets, band):
    assert size_band(plain_settings, code, employees, revenue, assets) == band


def test_size_band_unknown_when_an_indicator_is_missing(plain_settings):
    assert size_band(plain_settings, "C1311", 500, None, None) is None
    assert size_band(plain_settings, "E47", None, 6000, None) is None
    assert size_band(plain_settings, "P8310", None, 9999, None) is None


def test_size_thresholds_come_from_the_config_file(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "enterprise_size.yaml").write_text(
        "rules: []\nother: {large: {employees: 5}, medium: {employees: 3}, small: {employees: 2}}\n",
        encoding="utf-8",
    )
    s = Settings(data_dir=tmp_path / "var", config_dir=conf)
    assert size_band(s, "C1311", 5, 1, None) == "large"
    assert size_band(s, "C1311", 1, 1, None) == "micro"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("C1311", "C1311"), ("c 13", "C13"), ("1311", "C1311"), ("C", "C"), ("f52", "F52")],
)
def test_canonical_industry(raw, code):
    assert canonical_industry(raw) == code


@pytest.mark.parametrize("raw", ["C1", "A13", "Z13", "C13111", "99", "", "CC13"])
def test_canonical_industry_refuses(raw):
    with pytest.raises(InvalidInput):
        canonical_industry(raw)


# ---------------------------------------------------------------- the matcher (SQL)
def _ids(s, p, settings):
    return matching_enterprise_ids(s, p, local_today(settings))


def test_industry_prefix_match(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        e_c = enterprise(s, settings, 1, industry_code="C")
        e_c1 = enterprise(s, settings, 2, industry_code="C1")  # no such level; stored anyway
        e_c13 = enterprise(s, settings, 3, industry_code="C13")
        e_c1311 = enterprise(s, settings, 4, industry_code="C1311")
        e_c14 = enterprise(s, settings, 5, industry_code="C1411")
        e_f = enterprise(s, settings, 6, industry_code="F5211")
        e_none = enterprise(s, settings, 7, industry_code=None)
        all_ids = sorted(e.id for e in (e_c, e_c1, e_c13, e_c1311, e_c14, e_f, e_none))
        assert _ids(s, policy(s, settings, industries=["C"]), settings) == sorted(
            [e_c.id, e_c1.id, e_c13.id, e_c1311.id, e_c14.id]
        )
        # "C13" fits C13 and C1311, never C1, C, or the neighbour C14
        assert _ids(s, policy(s, settings, industries=["C13"]), settings) == [e_c13.id, e_c1311.id]
        assert _ids(s, policy(s, settings, industries=["C1311"]), settings) == [e_c1311.id]
        assert _ids(s, policy(s, settings, industries=["13"]), settings) == [e_c13.id, e_c1311.id]
        assert _ids(s, policy(s, settings, industries=["C1312"]), settings) == []
        # "C1" is no GB/T 4754 level: fits nothing rather than every C1x
        assert _ids(s, policy(s, settings, industries=["C1"]), settings) == []
        assert _ids(s, policy(s, settings, industries=["C14", "F"]), settings) == [
            e_c14.id,
            e_f.id,
        ]
        assert _ids(s, policy(s, settings), settings) == all_ids  # no restriction


def test_size_band_region_and_tag_targets(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        micro = enterprise(
            s, settings, 1, employees=19, revenue=300, region="赤壁镇", tags=["高新技术企业"]
        )
        small = enterprise(
            s, settings, 2, employees=20, revenue=300, region="车埠镇", tags=["外贸"]
        )
        large = enterprise(s, settings, 3, employees=1000, revenue=40000, tags=["外贸", "专精特新"])
        unknown = enterprise(s, settings, 4, employees=None, revenue=None)
        assert (micro.size_band, small.size_band, large.size_band) == ("micro", "small", "large")
        assert unknown.size_band is None
        assert _ids(s, policy(s, settings, size_bands=["小型", "微型"]), settings) == [
            micro.id,
            small.id,
        ]
        assert _ids(s, policy(s, settings, size_bands=["large"]), settings) == [large.id]
        assert _ids(s, policy(s, settings, regions=["车埠镇", "赤壁镇"]), settings) == [
            micro.id,
            small.id,
        ]
        assert _ids(s, policy(s, settings, tags=["外贸"]), settings) == [small.id, large.id]
        assert _ids(s, policy(s, settings, tags=["专精特新", "高新技术企业"]), settings) == [
            micro.id,
            large.id,
        ]
        assert _ids(s, policy(s, settings, tags=["无此标签"]), settings) == []
        # every dimension at once: all must hold
        both = policy(s, settings, size_bands=["小型"], regions=["车埠镇"], tags=["外贸"])
        assert _ids(s, both, settings) == [small.id]
        assert _ids(s, policy(s, settings, size_bands=["小型"], regions=["赤壁镇"]), settings) == []
        # audiences by the credit code: 91… 企业, 92… 个体工商户; 个人 alone reaches no file
        shop = enterprise(s, settings, 5)
        shop.uscc = build_uscc("00000005", category="2")
        s.add(shop)
        s.flush()
        assert _ids(s, policy(s, settings, audiences=["个人"]), settings) == []
        firms = [micro.id, small.id, large.id, unknown.id]
        assert _ids(s, policy(s, settings, audiences=["个人", "企业"]), settings) == firms
        assert _ids(s, policy(s, settings, audiences=["个体工商户"]), settings) == [shop.id]
        assert len(_ids(s, policy(s, settings, audiences=["企业", "个体工商户"]), settings)) == 5


def test_only_published_in_force_public_policies_match(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        e = enterprise(s, settings, 1)
        today = local_today(settings)
        live = policy(s, settings, effective_from=YESTERDAY, expires_on=TOMORROW)
        assert matching_enterprise_ids(s, live, today) == [e.id]
        for p in (
            policy(s, settings, status=ArticleStatus.draft),
            policy(s, settings, status=ArticleStatus.reviewed),
            policy(s, settings, status=ArticleStatus.expired),
            policy(s, settings, expires_on=YESTERDAY),
            policy(s, settings, effective_from=TOMORROW),
            policy(s, settings, is_public=False),
            policy(s, settings, kind="办事指南"),
        ):
            assert matching_enterprise_ids(s, p, today) == [], p.title
            assert count_matches(s, p, today) == 0
        # the last day of a policy still counts; the first day too
        assert matching_enterprise_ids(s, policy(s, settings, expires_on=today), today) == [e.id]
        assert matching_enterprise_ids(s, policy(s, settings, effective_from=today), today) == [
            e.id
        ]


def test_opted_out_left_out_when_pushing(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        a = enterprise(s, settings, 1)
        b = enterprise(s, settings, 2, push_opt_out=True)
        p = policy(s, settings)
        today = local_today(settings)
        assert matching_enterprise_ids(s, p, today) == [a.id, b.id]
        assert matching_enterprise_ids(s, p, today, pushable_only=True) == [a.id]


def test_both_directions_agree(engine, settings):
    """An enterprise's policies (one UNION ALL) are exactly the policies whose enterprises include it."""
    setup(engine, settings)
    with session_scope(engine) as s:
        ents = [
            enterprise(s, settings, 1, industry_code="C1311", employees=19, revenue=300),
            enterprise(
                s, settings, 2, industry_code="F5211", employees=60, revenue=600, region="车埠镇"
            ),
            enterprise(s, settings, 3, industry_code="C1411", tags=["外贸"]),
            enterprise(s, settings, 4, industry_code=None, employees=None, revenue=None),
        ]
        pols = [
            policy(s, settings),
            policy(s, settings, industries=["C13"]),
            policy(s, settings, industries=["C"], size_bands=["微型", "小型"]),
            policy(s, settings, regions=["车埠镇"]),
            policy(s, settings, tags=["外贸"]),
            policy(s, settings, size_bands=["中型"], industries=["F52"]),
            policy(s, settings, expires_on=YESTERDAY),
        ]
        today = local_today(settings)
        forward = {p.id: set(matching_enterprise_ids(s, p, today)) for p in pols}
        for e in ents:
            backward = {p.id for p in matching_policies(s, e.id, today)}
            assert backward == {pid for pid, es in forward.items() if e.id in es}
        assert forward[pols[5].id] == {ents[1].id}
        assert forward[pols[6].id] == set()
