"""Article bodies are rich text from editors' browsers: kept only through an allow-list (nh3,
the Rust ammonia sanitiser), so a script, an event handler or a javascript: link never reaches
an agent's or a citizen's page."""

from __future__ import annotations

import html
import re

import nh3

TAGS = frozenset(
    {
        "p",
        "br",
        "strong",
        "b",
        "em",
        "i",
        "u",
        "s",
        "ul",
        "ol",
        "li",
        "h2",
        "h3",
        "h4",
        "blockquote",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "a",
        "span",
        "hr",
    }
)
ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_BLOCK_END = re.compile(r"</(?:p|li|h[2-4]|tr|blockquote|table)>|<br\s*/?>|<hr\s*/?>", re.I)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\n\s*\n+")


def clean_html(raw: str) -> str:
    """The body as it may be stored and shown: allowed tags and attributes only, links with
    rel="noopener noreferrer", scripts and styles removed with their content."""
    return nh3.clean(
        raw or "",
        tags=set(TAGS),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        clean_content_tags={"script", "style"},
        strip_comments=True,
    ).strip()


def plain_text(clean: str) -> str:
    """Text of a cleaned body, one block per line (search, snippets, SMS)."""
    text = _BLOCK_END.sub("\n", clean)
    text = html.unescape(_TAG.sub("", text))
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return _LINES.sub("\n", "\n".join(ln for ln in lines if ln)).strip()


def paragraphs_to_html(text: str) -> str:
    """Starter content is written as plain paragraphs; lines starting with "- " become a list."""
    out: list[str] = []
    items: list[str] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("- "):
            items.append(f"<li>{html.escape(line[2:].strip())}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line:
            out.append(f"<p>{html.escape(line)}</p>")
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    return "".join(out)
