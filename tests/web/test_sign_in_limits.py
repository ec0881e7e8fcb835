"""Sign-in refuses keys that cannot read the dashboard, limits failed attempts per address, and caps
sessions per account (issue 23, item 5)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.router.access.rbac import ServiceAccount
from services.router.errors import RateLimited
from services.router.web.sessions import SessionStore
from services.router.web.throttle import SignInThrottle
from tests.api.conftest import KEYS, WRONG_KEY
from tests.web.conftest import sign_in


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_without_backlog_read_gets_the_unknown_key_answer(client: TestClient) -> None:
    unknown = client.post("/login", data={"api_key": WRONG_KEY}, follow_redirects=False)
    no_read = client.post("/login", data={"api_key": KEYS["alertmanager"]}, follow_redirects=False)
    assert no_read.status_code == unknown.status_code == 401
    assert "set-cookie" not in no_read.headers
    assert no_read.text == unknown.text  # nothing tells a valid key without the entitlement apart
    assert client.get("/", follow_redirects=False).status_code == 303  # still signed out


def test_failed_sign_ins_are_limited_per_address_then_429_with_retry_after(client: TestClient) -> None:
    for _ in range(10):
        assert client.post("/login", data={"api_key": WRONG_KEY}, follow_redirects=False).status_code == 401
    limited = client.post("/login", data={"api_key": WRONG_KEY}, follow_redirects=False)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "too many failed sign-ins" in limited.text
    assert limited.headers["content-security-policy"]  # still the page's headers
    valid = client.post("/login", data={"api_key": KEYS["readonly"]}, follow_redirects=False)
    assert valid.status_code == 429 and "set-cookie" not in valid.headers  # a guess cannot be confirmed


def test_the_budget_refills_as_failures_age_and_addresses_are_apart() -> None:
    clock = FakeMonotonic()
    throttle = SignInThrottle(budget=3, window_seconds=60, monotonic=clock)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
        clock.now += 10
    with pytest.raises(RateLimited) as refused:
        throttle.check("10.0.0.1")
    assert refused.value.retry_after_seconds == 30  # the first failure leaves the window 60 s after it
    throttle.check("10.0.0.2")  # another address has its own budget
    clock.now += 30
    throttle.check("10.0.0.1")


def test_the_throttle_tracks_a_bounded_number_of_addresses() -> None:
    clock = FakeMonotonic()
    throttle = SignInThrottle(budget=1, max_addresses=100, monotonic=clock)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
        clock.now += 0.01
    assert len(throttle._failures) <= 100
    with pytest.raises(RateLimited):
        throttle.check("10.0.3.231")  # the most recent ones are kept


def account(name: str) -> ServiceAccount:
    return ServiceAccount(name, frozenset({"tools.backlog.read"}), f"{name.upper()}_API_KEY")


def test_sessions_are_capped_per_account_so_one_key_holder_cannot_evict_the_others() -> None:
    clock = FakeMonotonic()
    store = SessionStore(max_sessions=10, max_sessions_per_account=3, monotonic=clock)
    admin_id, _ = store.create(account("admin"))
    clock.now += 1
    ids = []
    for _ in range(50):  # one key holder signing in over and over
        ids.append(store.create(account("readonly"))[0])
        clock.now += 1
    assert store.get(admin_id) is not None
    assert store.count("readonly") == 3
    assert [store.get(i) is not None for i in ids[-3:]] == [True] * 3 and store.get(ids[0]) is None


def test_a_full_store_takes_from_the_account_with_the_most_sessions() -> None:
    clock = FakeMonotonic()
    store = SessionStore(max_sessions=4, max_sessions_per_account=3, monotonic=clock)
    admin_id, _ = store.create(account("admin"))
    for _ in range(3):
        clock.now += 1
        store.create(account("readonly"))
    clock.now += 1
    store.create(account("oncall"))  # the store is full: readonly (3) gives one up, not admin
    assert store.get(admin_id) is not None
    assert (store.count("readonly"), store.count("oncall"), len(store)) == (2, 1, 4)


def test_sign_in_still_works(client: TestClient) -> None:
    sign_in(client, "readonly")
    assert client.get("/").status_code == 200
