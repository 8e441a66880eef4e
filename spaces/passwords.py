"""Password hashing: argon2id through libpass (imported as ``passlib``)."""

from __future__ import annotations

from passlib.hash import argon2

# OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane. The drive
# caches verified credentials briefly, so this cost is paid once per session.
_HASHER = argon2.using(memory_cost=19456, time_cost=2, parallelism=1)

#: Verified against when a user does not exist, so a wrong user name costs the
#: same time as a wrong password and timing does not reveal who exists.
_DUMMY_HASH = _HASHER.hash("resguardo-dummy-password")

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return str(_HASHER.hash(password))


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant-work check: with ``hashed=None`` it verifies a dummy hash and fails."""
    if hashed is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return False
    try:
        return bool(_HASHER.verify(password, hashed))
    except (ValueError, TypeError):
        return False
