"""The live-PBX harness's own Asterisk files, checked without running Asterisk (its binary may not
run on this CPU: tests/pbx then skips, and a missing module or directory would go unseen until a
machine where it runs). The Asterisk tree's XML documentation says which module provides each
dialplan application and function and which modules a module depends on.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest

from callcenter.asterisk_config import TEMPLATES
from tests.pbx.harness import MODULES, TEST_DIALPLAN, asterisk_conf, asterisk_home, make_tree

HOME = asterisk_home()
DOCS = HOME / "var" / "lib" / "asterisk" / "documentation" / "core-en_US.xml" if HOME else None
needs_docs = pytest.mark.skipif(
    DOCS is None or not DOCS.exists(), reason="no Asterisk tree with its XML documentation"
)


@cache
def _docs() -> ET.Element:
    assert DOCS is not None
    return ET.parse(DOCS).getroot()


def _providers() -> dict[str, set[str]]:
    """Application (lower-case) or function name → the modules that provide it (VoiceMail: the
    file, IMAP and ODBC builds of app_voicemail; one of them is enough)."""
    out: dict[str, set[str]] = {}
    for el in _docs().iter():
        if el.tag in ("application", "function") and el.get("module"):
            name = el.get("name", "")
            key = name.lower() if el.tag == "application" else name
            out.setdefault(key, set()).add(el.get("module", ""))
    return out


def _depends() -> dict[str, set[str]]:
    """Module → the modules it depends on (<depend> naming a module of this Asterisk tree)."""
    assert HOME is not None
    present = {p.stem for p in (HOME / "lib" / "asterisk" / "modules").glob("*.so")}
    out: dict[str, set[str]] = {}
    for el in _docs().iter("module"):
        deps = {d.text or "" for d in el.findall("depend") if d.get("type") in (None, "module")}
        out[el.get("name", "")] = deps & present
    return out


def _dialplan() -> str:
    text = (TEMPLATES / "extensions.conf").read_text(encoding="utf-8") + TEST_DIALPLAN
    return "\n".join(line.split(";", 1)[0] for line in text.splitlines())


@needs_docs
def test_every_application_and_function_the_dialplan_uses_is_loaded():
    providers = _providers()
    used = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\(", _dialplan()))
    missing = {}
    for name in used:
        modules = providers.get(name) or providers.get(name.lower()) or set()
        if modules and not modules & {"builtin", "core", *MODULES}:
            missing[name] = sorted(modules)
    assert missing == {}, "load these in tests/pbx/harness.py MODULES"


@needs_docs
def test_every_loaded_module_has_the_modules_it_depends_on():
    deps = _depends()
    assert deps["cdr_custom"] == {"res_cdrel_custom"}  # 22.10: cdr_custom runs on it
    missing = {m: sorted(deps.get(m, set()) - set(MODULES)) for m in MODULES}
    assert {m: d for m, d in missing.items() if d} == {}


def test_the_probe_and_the_test_pbx_get_every_directory_asterisk_needs(tmp_path):
    home = tmp_path / "asterisk"  # only paths are taken from it
    root = tmp_path / "pbx"
    make_tree(root, home)
    conf = asterisk_conf(root, home)
    dirs = dict(re.findall(r"^(ast\w+dir) => (.+)$", conf, flags=re.MULTILINE))
    assert set(dirs) == {
        "astetcdir",
        "astmoddir",
        "astdatadir",
        "astvarlibdir",
        "astdbdir",
        "astkeydir",
        "astagidir",
        "astspooldir",
        "astrundir",
        "astlogdir",
        "astcachedir",
        "astsbindir",
    }
    for key, path in dirs.items():
        if key not in ("astmoddir", "astsbindir"):  # the Asterisk tree's own
            assert Path(path).is_dir(), key
    data = Path(dirs["astdatadir"])
    assert (data / "documentation").is_symlink()  # else Asterisk exits 1 at boot (stasis)
    assert (data / "sounds").is_dir()
    assert (Path(dirs["astlogdir"]) / "cdr-custom").is_dir()  # dxe.csv is appended, not created
