"""Slowing down repeated bad passwords (drive and portal logins).

After ``limit`` failures for a key within ``window`` seconds, the key is blocked
for a pause that doubles with each further failure, up to ``max_block`` seconds:
short enough that the real owner is never locked out for long, long enough that
guessing is hopeless. In memory, per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int
    first: float
    blocked_until: float


class Throttle:
    def __init__(self, limit: int, window: float, max_block: float) -> None:
        self.limit, self.window, self.max_block = limit, window, max_block
        self._lock = threading.Lock()
        self._data: dict[str, _Failures] = {}

    def blocked(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            f = self._data.get(key)
            return bool(f and f.blocked_until > now)

    def failure(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            f = self._data.get(key)
            if f is None or now - f.first > self.window:
                f = self._data[key] = _Failures(0, now, 0.0)
            f.count += 1
            over = f.count - self.limit
            if over >= 0:
                f.blocked_until = now + min(2.0 ** over, self.max_block)
            if len(self._data) > 100_000:  # bound memory under a spray of names
                cutoff = now - self.window
                for k in [k for k, v in self._data.items() if v.first < cutoff]:
                    del self._data[k]

    def success(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
