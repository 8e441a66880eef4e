#!/usr/bin/env python3
"""Portal translations: Spanish is the source language (msgids), English the
second locale.

  python scripts/translations.py update   extract the strings of portal/ into
                                          messages.pot and merge them into the .po
  python scripts/translations.py compile  compile the .po into the .mo Flask-Babel loads

Translate new strings by editing portal/translations/en/LC_MESSAGES/messages.po;
tests/test_portal_i18n.py fails while a string has no English or the .mo is stale.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"
POT = TRANSLATIONS / "messages.pot"
PYBABEL = str(Path(sys.executable).with_name("pybabel"))


def extract() -> None:
    subprocess.run([PYBABEL, "-q", "extract", "-F", str(ROOT / "portal" / "babel.cfg"),  # noqa: S603
                    "-k", "_l", "-k", "lazy_gettext", "--no-location", "--sort-output",
                    "--omit-header", "-o", str(POT), str(ROOT)], check=True, cwd=ROOT)


def main(action: str) -> int:
    if action == "update":
        extract()
        subprocess.run([PYBABEL, "-q", "update", "-i", str(POT), "-d", str(TRANSLATIONS),  # noqa: S603
                        "-l", "en", "--no-fuzzy-matching"], check=True)
    elif action == "compile":
        subprocess.run([PYBABEL, "-q", "compile", "-d", str(TRANSLATIONS), "-l", "en"],  # noqa: S603
                       check=True)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
