"""Password hashing: argon2id through libpass (imported as ``passlib``)."""

from __future__ import annotations

import os
import threading

from passlib.hash import argon2

# OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane. The drive
# caches verified credentials briefly, so this cost is paid once per session.
_HASHER = argon2.using(memory_cost=19456, time_cost=2, parallelism=1)

#: Verified against when a user does not exist, so a wrong user name costs the
#: same time as a wrong password and timing does not reveal who exists.
_DUMMY_HASH = _HASHER.hash("resguardo-dummy-password")

MIN_PASSWORD_LENGTH = 8

#: How many argon2 runs the process does at once. Each holds its 19 MiB while it
#: runs and more runs than cores finish no sooner, so a crowd of logins (a
#: branch arriving at 9:00, an expired cache, a password sprayer) waits its turn
#: instead of multiplying the server's memory.
HASH_SLOTS = max(2, os.cpu_count() or 2)
_slots = threading.BoundedSemaphore(HASH_SLOTS)


def hash_password(password: str) -> str:
    with _slots:
        return str(_HASHER.hash(password))


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant-work check: with ``hashed=None`` it verifies a dummy hash and fails."""
    with _slots:
        if hashed is None:
            _HASHER.verify(password, _DUMMY_HASH)
            return False
        try:
            return bool(_HASHER.verify(password, hashed))
        except (ValueError, TypeError):
            return False
