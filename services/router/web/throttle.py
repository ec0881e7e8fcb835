"""Failed sign-ins per client address: a small budget per minute, then 429 with ``Retry-After``.

A sign-in guesses an API key; without a limit a client could try keys as fast as the router
answers. Each address may fail ``BUDGET`` times within ``WINDOW_SECONDS``; past that, every
sign-in from it (a correct key too, so a guess cannot be confirmed) is refused until its oldest
failure leaves the window. A success does not reset the count: holding one key must not buy
more guesses at another. Behind a proxy the address is what uvicorn's ``--proxy-headers`` makes
of ``X-Forwarded-For`` from a trusted proxy, else the proxy's own (all its users then share one
budget). At most ``MAX_ADDRESSES`` are tracked; the one whose last failure is oldest goes first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from services.router.errors import RateLimited

BUDGET = 10
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000


class SignInThrottle:
    def __init__(self, *, budget: int = BUDGET, window_seconds: float = WINDOW_SECONDS,
                 max_addresses: int = MAX_ADDRESSES, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.window_seconds = window_seconds
        self.max_addresses = max_addresses
        self.monotonic = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise ``RateLimited`` while ``address`` has used up its budget."""
        now = self.monotonic()
        with self._lock:
            failures = self._recent(address, now)
            if len(failures) < self.budget:
                return
            wait = max(1, math.ceil(failures[0] + self.window_seconds - now))
        raise RateLimited(f"too many failed sign-ins from this address; try again in {wait} s",
                          retry_after_seconds=wait)

    def failed(self, address: str) -> None:
        now = self.monotonic()
        with self._lock:
            failures = self._recent(address, now)
            failures.append(now)
            self._failures[address] = failures
            self._failures.move_to_end(address)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address, deque())
        while failures and now - failures[0] >= self.window_seconds:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures
