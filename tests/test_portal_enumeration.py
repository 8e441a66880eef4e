"""Anonymous enumeration through the portal: sign-up and password reset answer alike
and cost alike whatever exists."""

from __future__ import annotations

import pytest
from portal_helpers import PASSWORD, sign_up

# -- anonymous enumeration: sign-up and password reset -------------------------------------

def _answer(b) -> str:
    """The page without the e-mail address and the CSRF token (which differ)."""
    import re

    text = re.sub(r'value="[^"]*"', "", b.text)
    return re.sub(r"[\w.+-]+@[\w.-]+", "CORREO", text)


def _medians_ms(n: int, *fns) -> list[float]:
    """The median time of each of ``fns`` over ``n`` rounds, taken in turns (one
    of each per round), so a machine that gets busier slows them all alike."""
    import statistics
    import time

    times: list[list[float]] = [[] for _ in fns]
    for i in range(n):
        for fn, t in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn(i)
            t.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(t) for t in times]


#: How far apart two medians may be and still count as "the same work": the
#: difference once measured was tenfold (5-22 ms against 41-94 ms).
SAME_WORK = (0.4, 2.5)


@pytest.mark.db
def test_sign_up_answers_alike_and_costs_alike_whatever_exists(portal):
    """A username taken by an account or by a space made with the CLI, and an
    e-mail that already has an account, get the page a new sign-up gets, after
    the same work (argon2 always runs; one e-mail always goes out): only the
    mailbox owner learns which it was."""
    from spaces.access import service

    sign_up(portal)  # account 'despacho' with ana@despacho.mx
    service.create_space(portal.settings, portal.db, "beta", "4G")  # made by the CLI
    b = portal.browser()

    def attempt(username: str, email: str) -> str:
        b.post("/cuenta/registro", {"username": username, "email": email,
                                    "password": PASSWORD}, form_page="/cuenta/registro")
        return _answer(b)

    new = attempt("nuevo", "nuevo@x.mx")
    assert "Revise su correo" in new
    assert attempt("beta", "alguien@x.mx") == new  # a space made by the CLI
    assert attempt("despacho", "otro@x.mx") == new  # an account's username
    assert attempt("intruso", "ana@despacho.mx") == new  # a registered e-mail
    assert portal.smtp.find("no está disponible", "alguien@x.mx")
    assert portal.smtp.find("no está disponible", "otro@x.mx")
    assert portal.smtp.find("Ya tiene una cuenta", "ana@despacho.mx")
    from spaces.commerce import accounts

    assert {a.username for a in accounts.list_accounts(portal.db)} == {"despacho", "nuevo"}
    # the same work: medians of many tries, a generous margin (argon2 dominates)
    fresh, taken_space, taken_user, known_email = _medians_ms(
        11, lambda i: attempt(f"fresco{i}", f"fresco{i}@x.mx"),
        lambda i: attempt("beta", f"otro{i}@x.mx"),
        lambda i: attempt("despacho", f"mas{i}@x.mx"),
        lambda i: attempt(f"otro{i}", "ana@despacho.mx"))
    for other in (taken_space, taken_user, known_email):
        assert SAME_WORK[0] < other / fresh < SAME_WORK[1], (fresh, taken_space, taken_user,
                                                              known_email)


@pytest.mark.db
def test_password_reset_answers_alike_and_costs_alike_for_unknown_addresses(portal):
    sign_up(portal)
    b = portal.browser()

    def ask(email: str) -> str:
        b.post("/cuenta/olvide", {"email": email}, form_page="/cuenta/olvide")
        return _answer(b)

    assert ask("nadie@x.mx") == ask("ana@despacho.mx")
    unknown, known = _medians_ms(11, lambda i: ask(f"nadie{i}@x.mx"),
                                 lambda i: ask("ana@despacho.mx"))
    assert SAME_WORK[0] < unknown / known < SAME_WORK[1], (unknown, known)
