"""Which departments a conduct complaint (作风投诉) is about, read from the complaint's own words.

The names come from the department registry (the Department rows' names, as the administrator
keeps them, plus departments.yaml's seed names) and the common short names in departments.yaml
(`aliases: [市场监管局, 工商局, …]` on a department's entry), one list for the whole system.

The rule (so that a department merely mentioned as context is not accused): for each place a
conduct keyword (routing.yaml `conduct`) occurs, within its sentence (ended by 。！？；or a new
line),
1. the department named last before the keyword in the same clause (clauses split at ，：), else
2. the department named last in the nearest earlier clause of that sentence that names one (the
   subject carried over: "市场监管局窗口的人，故意刁难"), else
3. the department named first after the keyword in that sentence ("态度恶劣的是城管的人");
plus the departments joined to that one by 和/与/及/以及/跟/同/还有/、 ("税务局和市场监管局都刁难").
A department named only in another sentence, or earlier in a sentence with a nearer named
department ("我按税务局的要求去市场监管局办执照，窗口人员故意刁难" accuses only 市场监管局), is
context, not accused. The office that takes conduct complaints is never accused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing.models import Department

_SENTENCE = re.compile(r"[。！？!?；;\n]")
_CLAUSE = re.compile(r"[，,：:]")
_JOIN = re.compile(r"^(和|与|及|以及|跟|同|还有|、|/)$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def department_terms(
    settings: Settings, departments: Mapping[str, Department] | None = None
) -> dict[str, str]:
    """Every way the text may name a department -> its code: the registry's names (the rows in
    `departments` when given, else the file's) and departments.yaml's `aliases`."""
    terms: dict[str, str] = {}
    entries = load_yaml(settings, "departments.yaml").get("departments") or []
    for entry in entries:
        code = str(entry.get("code") or "")
        aliases = entry.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise ConfigError(f"departments.yaml: {code}: aliases must be a list of names")
        for name in [entry.get("name"), *aliases]:
            if code and isinstance(name, str) and name.strip():
                terms.setdefault(_norm(name.strip()), code)
    for code, dept in (departments or {}).items():
        if dept.name and dept.name.strip():
            terms[_norm(dept.name.strip())] = code  # the administrator's name wins over a seed's
    return terms


@lru_cache(maxsize=8)
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # longest first: at each place the longest name wins ("城管执法局" over "城管")
    return re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)))


def accused_in_text(
    settings: Settings,
    text: str,
    keywords: Sequence[str],
    departments: Mapping[str, Department] | None = None,
    *,
    office: str | None = None,
) -> tuple[str, ...]:
    """The codes of the departments the complaint `text` accuses (the rule above), in the order
    first accused; `keywords` are the conduct keywords found in it (routing.ConductMatch.hits)."""
    terms = department_terms(settings, departments)
    t = _norm(text or "")
    if not terms or not t:
        return ()
    mentions = [(m.start(), m.end(), terms[m.group()]) for m in _pattern(tuple(terms)).finditer(t)]
    mentions = [m for m in mentions if m[2] != office]
    if not mentions:
        return ()
    accused: dict[str, None] = {}
    for kw in {_norm(k) for k in keywords if k}:
        for hit in re.finditer(re.escape(kw), t):
            for i in _chosen(t, mentions, hit.start()):
                accused.setdefault(mentions[i][2])
    return tuple(accused)


def _bounds(pattern: re.Pattern[str], text: str, pos: int, lo: int, hi: int) -> tuple[int, int]:
    """The span [start, end) of the piece of text[lo:hi] around `pos`, split where `pattern` is."""
    start = lo
    for sep in pattern.finditer(text, lo, pos):
        start = sep.end()
    end = pattern.search(text, pos, hi)
    return start, end.start() if end else hi


def _chosen(text: str, mentions: list[tuple[int, int, str]], pos: int) -> list[int]:
    """The indexes of the mentions the keyword at `pos` accuses (the rule in the docstring)."""
    s_lo, s_hi = _bounds(_SENTENCE, text, pos, 0, len(text))
    c_lo, _ = _bounds(_CLAUSE, text, pos, s_lo, s_hi)
    inside = [i for i, m in enumerate(mentions) if m[0] >= s_lo and m[1] <= s_hi]
    before = [i for i in inside if mentions[i][1] <= pos]
    here = [i for i in before if mentions[i][0] >= c_lo]
    pick: int | None = here[-1] if here else (before[-1] if before else None)
    if pick is None:
        after = [i for i in inside if mentions[i][0] >= pos]
        if not after:
            return []
        pick = after[0]
    chosen = [pick]
    j = pick
    while j > 0 and _JOIN.match(text[mentions[j - 1][1] : mentions[j][0]]):
        j -= 1
        chosen.append(j)
    j = pick
    while j + 1 < len(mentions) and _JOIN.match(text[mentions[j][1] : mentions[j + 1][0]]):
        j += 1
        chosen.append(j)
    return sorted(chosen)
