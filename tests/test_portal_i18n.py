"""Spanish first, English second: every string the portal shows has an English
translation, and the compiled catalogue Flask-Babel loads matches the .po."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LC = ROOT / "portal" / "translations" / "en" / "LC_MESSAGES"


def _catalog_ids(cat) -> dict:
    return {tuple(m.id) if isinstance(m.id, (list, tuple)) else m.id:
            tuple(m.string) if isinstance(m.string, (list, tuple)) else m.string
            for m in cat if m.id}


def test_every_portal_string_has_an_english_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).with_name("pybabel")), "-q", "extract", "-F",
                    str(ROOT / "portal" / "babel.cfg"), "-k", "_l", "-k", "lazy_gettext",
                    "-o", str(pot), str(ROOT)], check=True, cwd=ROOT)
    source = {m.id for m in read_po(pot.open("rb")) if m.id}
    assert len(source) > 150
    po = read_po((LC / "messages.po").open("rb"))
    translated = {m.id for m in po if m.id and (all(m.string) if isinstance(m.string, tuple)
                                                 else m.string) and not m.fuzzy}
    missing = sorted(str(x) for x in source - translated)
    assert not missing, ("untranslated (run scripts/translations.py update, translate, "
                         f"then compile): {missing}")


def test_compiled_catalogue_matches_the_po():
    po = _catalog_ids(read_po((LC / "messages.po").open("rb")))
    mo = _catalog_ids(read_mo((LC / "messages.mo").open("rb")))
    assert po == mo, "stale messages.mo: run scripts/translations.py compile"
