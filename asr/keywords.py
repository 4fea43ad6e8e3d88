"""Keyword spotting over transcripts for the hotline's vocabulary (config keywords.yaml + the
department names in departments.yaml). Hits go to the ticket classifier as `keywords=` and are
stored with the transcript (with times when word timings are available).

Matching is on the text with all whitespace removed, because Vosk's Chinese word segmentation does
not have to agree with the keyword's (营业 执照 vs 营业执照).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from config.loader import load_yaml
from config.settings import Settings

# Suffixes that a caller drops when naming a department (市场监督管理局 → 市场监管, 税务局 → 税务).
_DEPT_SUFFIXES = ("管理局", "分局", "办公室", "局", "委员会")


@dataclass(frozen=True)
class Entry:
    word: str  # canonical keyword reported to the classifier
    surface: str  # the form searched for (the word itself or an alias)
    department: str | None
    tag: str | None


@dataclass(frozen=True)
class Hit:
    word: str
    surface: str
    department: str | None
    tag: str | None
    start_char: int  # offsets into the whitespace-free text
    end_char: int
    start_s: float | None = None
    end_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entries_from(data: dict[str, Any], depts: dict[str, Any]) -> tuple[Entry, ...]:
    out: list[Entry] = []
    for item in data.get("keywords", []) or []:
        word = str(item["word"])
        for surface in [word, *[str(a) for a in item.get("aliases", []) or []]]:
            out.append(Entry(word, surface, item.get("department"), item.get("tag")))
    for d in depts.get("departments", []) or []:
        name = str(d["name"])
        out.append(Entry(name, name, d["code"], "department"))
        for suf in _DEPT_SUFFIXES:
            if name.endswith(suf) and len(name) - len(suf) >= 2:
                out.append(Entry(name, name[: -len(suf)], d["code"], "department"))
                break
    # longest surface first, so 出口退税 wins over 退税 at the same place
    return tuple(sorted(out, key=lambda e: -len(e.surface)))


@lru_cache(maxsize=8)
def _cached(kw_path: str, kw_mtime: float, d_path: str, d_mtime: float) -> tuple[Entry, ...]:
    import yaml

    with open(kw_path, encoding="utf-8") as f:
        kw = yaml.safe_load(f) or {}
    with open(d_path, encoding="utf-8") as f:
        depts = yaml.safe_load(f) or {}
    return _entries_from(kw, depts)


def load_entries(settings: Settings) -> tuple[Entry, ...]:
    kp, dp = settings.config_file("keywords.yaml"), settings.config_file("departments.yaml")
    load_yaml(settings, "keywords.yaml")  # validates (clear ConfigError on a broken file)
    return _cached(str(kp), kp.stat().st_mtime, str(dp), dp.stat().st_mtime)


def _char_times(words: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Per character of the whitespace-free raw text: the (start, end) of the word it came from."""
    times: list[tuple[float, float]] = []
    for w in words:
        token = re.sub(r"\s+", "", str(w.get("word", "")))
        times.extend([(float(w.get("start", 0.0)), float(w.get("end", 0.0)))] * len(token))
    return times


def spot(
    text: str,
    settings: Settings,
    *,
    words: list[dict[str, Any]] | None = None,
    entries: tuple[Entry, ...] | None = None,
) -> list[Hit]:
    """Non-overlapping hits in text order. `words` (Vosk word list) adds times to each hit when
    `text` is the raw recognised text those words make up."""
    flat = re.sub(r"\s+", "", text)
    entries = entries if entries is not None else load_entries(settings)
    taken = [False] * len(flat)
    hits: list[Hit] = []
    for e in entries:
        for m in re.finditer(re.escape(e.surface), flat):
            s, t = m.start(), m.end()
            if any(taken[s:t]):
                continue
            for i in range(s, t):
                taken[i] = True
            hits.append(Hit(e.word, e.surface, e.department, e.tag, s, t))
    hits.sort(key=lambda h: h.start_char)
    if words:
        ct = _char_times(words)
        if len(ct) == len(flat):
            hits = [
                Hit(
                    **{
                        **h.as_dict(),
                        "start_s": ct[h.start_char][0],
                        "end_s": ct[h.end_char - 1][1],
                    }
                )
                for h in hits
            ]
    return hits


def keyword_list(hits: list[Hit]) -> list[str]:
    """Distinct canonical words in first-seen order: the classifier's `keywords=` argument."""
    seen: dict[str, None] = {}
    for h in hits:
        seen.setdefault(h.word, None)
    return list(seen)
