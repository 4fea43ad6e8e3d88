"""Chinese word segmentation for the knowledge base: jieba, with the hotline's vocabulary.

One place turns text into search words, for the index (an article's segmented columns) and for a
question (its words grouped with their synonyms). The vocabulary comes from
config/defaults/knowledge.yaml: synonym groups, stopwords (spoken fillers and dialect words such
as 冇得/么样/晓得) and extra dictionary words. jieba runs as a private Tokenizer, so these words do
not change how other parts of the program segment text.

Word weights come from jieba's own IDF table (general Chinese, not this corpus), so a question is
scored the same way on SQLite and PostgreSQL and does not depend on what else is in the store.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from config.loader import ConfigError, load_yaml
from config.settings import Settings

_WORD = re.compile(r"\w+")
_lock = threading.Lock()


@dataclass(frozen=True)
class Vocabulary:
    """The search vocabulary: synonym groups by word, stopwords, extra dictionary words."""

    groups: dict[str, tuple[str, ...]]
    stopwords: frozenset[str]
    words: tuple[str, ...]


@dataclass(frozen=True)
class QueryGroup:
    """One word of a question and the words that mean the same (itself first)."""

    word: str
    alternatives: tuple[str, ...]
    weight: float


def vocabulary(settings: Settings) -> Vocabulary:
    cfg = load_yaml(settings, "knowledge.yaml")
    return _vocabulary(
        _freeze(cfg.get("synonyms")), _freeze(cfg.get("stopwords")), _freeze(cfg.get("words"))
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@lru_cache(maxsize=8)
def _vocabulary(synonyms: Any, stopwords: Any, words: Any) -> Vocabulary:
    groups: dict[str, tuple[str, ...]] = {}
    for group in synonyms or ():
        if not isinstance(group, tuple) or len(group) < 2:
            raise ConfigError(f"knowledge.yaml: a synonym group needs two words or more: {group}")
        members = tuple(dict.fromkeys(normalise(str(w)) for w in group))
        for w in members:
            groups[w] = tuple(dict.fromkeys((*groups.get(w, ()), *members)))
    stops = frozenset(normalise(str(w)) for w in stopwords or ())
    extra = tuple(dict.fromkeys([*(normalise(str(w)) for w in words or ()), *groups]))
    return Vocabulary(groups, stops, extra)


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


@lru_cache(maxsize=8)
def _tokenizer(words: tuple[str, ...]) -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    with _lock:
        tk.initialize()
        for w in words:
            if len(w) > 1 and _WORD.fullmatch(w):
                tk.add_word(w, freq=max(tk.suggest_freq(w), 1000))
    return tk


@lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float]:
    from jieba.analyse.tfidf import DEFAULT_IDF, IDFLoader

    freq, median = IDFLoader(DEFAULT_IDF).get_idf()
    return freq, median


def word_weight(word: str) -> float:
    """How telling a word is: jieba's IDF (the median for unknown words), longer words a little
    more; a single character counts for little."""
    freq, median = _idf()
    w = freq.get(word, median)
    if len(word) == 1:
        w *= 0.5
    return max(w, 0.5) * (1 + 0.1 * min(len(word) - 1, 4))


def words(settings: Settings, text: str) -> list[str]:
    """The search words of `text` (search-engine mode: long words and their parts), no stopwords,
    no punctuation, in order."""
    vocab = vocabulary(settings)
    tk = _tokenizer(vocab.words)
    out: list[str] = []
    for tok in tk.cut_for_search(normalise(text or "")):
        for w in _WORD.findall(tok):
            if w not in vocab.stopwords and not w.isdigit():
                out.append(w)
    return out


def plain_words(settings: Settings, text: str) -> list[str]:
    """The words of `text` in jieba's precise mode (each character in one word, no overlapping
    parts), no stopwords, punctuation or numbers, in order: what the hotspot analysis counts."""
    vocab = vocabulary(settings)
    tk = _tokenizer(vocab.words)
    out: list[str] = []
    for tok in tk.cut(normalise(text or "")):
        for w in _WORD.findall(tok):
            if w not in vocab.stopwords and not w.isdigit():
                out.append(w)
    return out


def index_text(settings: Settings, text: str) -> str:
    """The segmented form stored in a search column: words separated by spaces."""
    return " ".join(words(settings, text))


def query_groups(settings: Settings, question: str, limit: int = 24) -> list[QueryGroup]:
    """The question's words, each with its synonyms, most telling first (at most `limit`)."""
    vocab = vocabulary(settings)
    seen: dict[str, QueryGroup] = {}
    for w in words(settings, question):
        if w in seen:
            continue
        alts = vocab.groups.get(w, (w,))
        seen[w] = QueryGroup(w, (w, *(a for a in alts if a != w)), word_weight(w))
    ranked = sorted(seen.values(), key=lambda g: -g.weight)
    return ranked[:limit]


def warm_up(settings: Settings) -> None:
    """Load the dictionary and the IDF table now (start-up), not on the first question."""
    _idf()
    _tokenizer(vocabulary(settings).words)
