"""Real-shaped CFDI for tests, built in-process with ../shared/tools/make_cfdi.py
(synthetic: nothing in them is real, every RFC passes the SAT check digit
unless a test changes it)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import pytest
from conftest import SHARED

TOOLS = SHARED / "tools"


def _make_cfdi() -> Any:
    if not (TOOLS / "make_cfdi.py").exists():
        pytest.skip(f"{TOOLS / 'make_cfdi.py'} is not here (it ships beside the repository)")
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import make_cfdi

    return make_cfdi


def stamped(seed: int = 1, *, version: str = "4.0", emisor_rfc: str | None = None,
            receptor_rfc: str | None = None, uuid: str | None = None,
            total: str | None = None) -> tuple[str, dict[str, Any]]:
    """A stamped CFDI ingreso as XML text (declaration included) and its fields.
    Pass fields to override them (a wrong RFC, a chosen UUID, another total)."""
    m = _make_cfdi()
    ctx = m.Ctx(seed)
    root, meta = m.build_ingreso(ctx, version, datetime(2024, 3, 1 + seed % 27, 10, 0, 0))
    meta = m.public_meta(meta)
    if emisor_rfc is not None:
        root.find("Emisor").set("Rfc", emisor_rfc)
        meta["emisor_rfc"] = emisor_rfc
    if receptor_rfc is not None:
        root.find("Receptor").set("Rfc", receptor_rfc)
        meta["receptor_rfc"] = receptor_rfc
    if uuid is not None:
        root.find("Complemento").children[-1].set("UUID", uuid)
        meta["uuid"] = uuid.upper()
    if total is not None:
        root.set("Total", total)
        meta["total"] = total
    return m.document(root), meta


def stamped_bytes(seed: int = 1, **kw: Any) -> tuple[bytes, dict[str, Any]]:
    text, meta = stamped(seed, **kw)
    return text.encode("utf-8"), meta


def rfc_with_wrong_check_digit(rfc: str) -> str:
    """The same RFC with its last character changed so the SAT check digit fails
    (as real RFCs issued by the SAT sometimes do)."""
    m = _make_cfdi()
    good = m.rfc_check_digit(rfc[:-1])
    wrong = next(c for c in "0123456789A" if c != good)
    return rfc[:-1] + wrong
