"""An RFC belongs to one account, proven by its Constancia de Situación Fiscal and
verified by an operator: naming a space by an RFC, two accounts, simultaneous approvals, a
username shaped like an RFC."""

from __future__ import annotations

import pytest
from portal_helpers import PASSWORD, Portal, sign_up

# -- an RFC belongs to one account, proven by its Constancia de Situación Fiscal -------------

RFC_A = "ABC680524P73"  # a persona moral with a valid check digit
PDF = b"%PDF-1.4\n% Constancia de Situacion Fiscal (de prueba)\n%%EOF\n"


def _operator(p: Portal):
    from spaces.commerce import accounts

    accounts.create_operator(p.db, "root", "ops@resguardo.mx", "operador-seguro-1")
    op = p.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": "operador-seguro-1"},
            form_page="/cuenta/entrar")
    return op


def _submit_constancia(b, rfc: str, pdf: bytes = PDF, name: str = "constancia.pdf"):
    import io

    return b.post("/cuenta/rfc", {"rfc": rfc, "constancia": (io.BytesIO(pdf), name)},
                  form_page="/cuenta/", content_type="multipart/form-data")


def _buy_named_by_rfc(p: Portal, b) -> str:
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "rfc"}, form_page="/planes")
    return b.text


def _review(p: Portal, op, username: str, action: str, reason: str = "") -> object:
    from spaces.commerce import accounts

    account = next(a for a in accounts.list_accounts(p.db, username)
                   if a.username == username)
    return op.post(f"/operador/rfc/{account.id}/{action}", {"motivo": reason},
                   form_page="/operador/rfc")


@pytest.mark.db
def test_naming_a_space_by_an_rfc_needs_an_operator_verified_constancia(portal):
    b = sign_up(portal, rfc=RFC_A)
    assert "verifíquelo" in _buy_named_by_rfc(portal, b)  # stated, not proven: refused
    assert "Agregado al carrito" not in b.text
    r = _submit_constancia(b, RFC_A, b"<html>no es un PDF</html>")
    assert "PDF" in b.text and r.status_code == 200
    _submit_constancia(b, RFC_A)
    assert "en revisión" in b.get("/cuenta/").get_data(as_text=True)
    assert "verifíquelo" in _buy_named_by_rfc(portal, b)  # still in review
    op = _operator(portal)
    page = op.get("/operador/rfc").get_data(as_text=True)
    assert RFC_A in page and "despacho" in page
    assert "1" in op.get("/operador/").get_data(as_text=True)  # pending count on the dashboard
    from spaces.commerce import accounts

    account = accounts.list_accounts(portal.db, "despacho")[0]
    doc = op.c.get(f"/operador/rfc/{account.id}/constancia.pdf")
    assert doc.status_code == 200 and doc.data == PDF
    assert "attachment" in doc.headers["Content-Disposition"]
    assert "sandbox" in doc.headers["Content-Security-Policy"]
    assert doc.headers["Cache-Control"] == "private, no-store"
    assert b.c.get(f"/operador/rfc/{account.id}/constancia.pdf").status_code == 404
    assert b.c.get("/operador/rfc").status_code == 404
    _review(portal, op, "despacho", "aprobar")
    assert "verificado" in b.get("/cuenta/").get_data(as_text=True)
    assert "Agregado al carrito" in _buy_named_by_rfc(portal, b)
    assert "abc680524p73" in b.text
    # a new RFC drops the verification until an operator looks again
    _submit_constancia(b, "GODE561231GR8")
    assert "verifíquelo" in _buy_named_by_rfc(portal, b)
    assert "abc680524p73" not in b.get("/carrito").get_data(as_text=True)


@pytest.mark.db
def test_two_accounts_never_hold_the_same_rfc(portal):
    a = sign_up(portal, "despacho", "ana@despacho.mx", rfc=RFC_A)
    squatter = sign_up(portal, "intruso", "intruso@x.mx", rfc=RFC_A)  # stating it is free
    _submit_constancia(a, RFC_A)
    _submit_constancia(squatter, RFC_A)
    op = _operator(portal)
    _review(portal, op, "intruso", "rechazar", "La constancia no corresponde.")
    assert "La constancia no corresponde" in squatter.get("/cuenta/").get_data(as_text=True)
    _review(portal, op, "despacho", "aprobar")
    # approving another account for the same RFC is refused, whatever the operator does
    _submit_constancia(squatter, RFC_A)
    assert "otra cuenta" in squatter.text
    from spaces.commerce import accounts, rfc_claims
    from spaces.core.errors import AlreadyExists

    intruso = accounts.list_accounts(portal.db, "intruso")[0]
    with portal.db.session() as s:  # even a claim that got in before the approval
        from sqlalchemy import update

        from spaces.core.models import Account

        s.execute(update(Account).where(Account.id == intruso.id)
                  .values(rfc=RFC_A, rfc_document="x.pdf", rfc_review_note=None))
    with pytest.raises(AlreadyExists):
        rfc_claims.approve(portal.db, intruso.id, "operator:root")
    assert "verifíquelo" in _buy_named_by_rfc(portal, squatter)


@pytest.mark.db
def test_simultaneous_approvals_of_one_rfc_verify_exactly_one_account(portal):
    import threading

    from spaces.commerce import accounts, rfc_claims
    from spaces.core.errors import AlreadyExists

    ids = []
    for i in range(4):
        b = sign_up(portal, f"cuenta{i}", f"c{i}@x.mx", rfc=RFC_A)
        _submit_constancia(b, RFC_A)
        ids.append(accounts.list_accounts(portal.db, f"cuenta{i}")[0].id)
    results: list[str] = []
    barrier = threading.Barrier(len(ids))

    def approve(account_id: int) -> None:
        barrier.wait()
        try:
            rfc_claims.approve(portal.db, account_id, "operator:root")
            results.append("ok")
        except AlreadyExists:
            results.append("taken")

    threads = [threading.Thread(target=approve, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "taken", "taken", "taken"]
    assert sum(accounts.get_account(portal.db, i).rfc_verified for i in ids) == 1


def test_a_username_shaped_like_an_rfc_cannot_squat_the_free_space(portal):
    b = portal.browser()
    for name in ("abc680524p73", "GODE561231GR8", "xaxx010101000"):
        b.post("/cuenta/registro", {"username": name, "email": f"{name}@x.mx",
                                    "password": PASSWORD}, form_page="/cuenta/registro")
        assert "forma de un RFC" in b.text, name
    from spaces.commerce import accounts

    assert accounts.list_accounts(portal.db) == []
