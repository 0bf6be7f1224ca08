"""Log-in (streaming/accounts.py): failed log-ins are throttled per username and per client
address, on the site's log-in page and the admin's alike."""

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client

from streaming.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-password-7"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _limits(settings) -> Iterator[None]:
    """The default counts, over an hour rather than a minute, so that no window ends
    halfway through a test; counters start from nothing; a fast password hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_FAILURES_PER_USERNAME = "5/h"
    settings.LOGIN_FAILURES_PER_ADDRESS = "20/h"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice() -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


def log_in(username: str, password: str, *, address: str = "127.0.0.1", path: str = LOGIN):
    """POST the log-in form from `address` with a fresh client (and its CSRF checks off,
    as the test client has them)."""
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


def test_a_failed_log_in_shows_the_form_again(alice) -> None:
    response = log_in("alice", "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert logged_in(log_in("alice", PASSWORD))


def test_five_failures_for_a_username_refuse_it_even_the_right_password(alice) -> None:
    for attempt in range(5):  # each from an address of its own: the username is counted
        assert log_in("alice", "wrong", address=f"10.0.0.{attempt + 1}").status_code == 200
    refused = log_in("alice", PASSWORD, address="10.0.1.1")
    assert refused.status_code == 429
    assert not logged_in(refused)
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert b"Too many failed log-ins for this username or from this address" in refused.content
    assert b'role="alert"' in refused.content and b'name="password"' in refused.content
    # The same username in other letter cases is the same account.
    assert log_in("ALICE", PASSWORD, address="10.0.1.2").status_code == 429
    # Another account is not affected, from any of those addresses.
    User.objects.create_user(username="bob", password=PASSWORD)
    assert logged_in(log_in("bob", PASSWORD, address="10.0.0.1"))


def test_twenty_failures_from_an_address_refuse_any_username_from_it(alice) -> None:
    for attempt in range(20):  # a different username each time: the address is counted
        assert log_in(f"guess{attempt}", "wrong", address="10.0.0.9").status_code == 200
    refused = log_in("alice", PASSWORD, address="10.0.0.9")
    assert refused.status_code == 429 and not logged_in(refused)
    assert logged_in(log_in("alice", PASSWORD, address="10.0.0.10"))


def test_successful_log_ins_are_not_counted(alice) -> None:
    for _ in range(8):
        assert logged_in(log_in("alice", PASSWORD))
    for _ in range(4):
        assert log_in("alice", "wrong").status_code == 200
    assert logged_in(log_in("alice", PASSWORD))


def test_the_admin_log_in_shares_the_throttle(alice) -> None:
    User.objects.create_superuser(username="root", password=PASSWORD)
    for _ in range(5):
        assert log_in("root", "wrong", path=ADMIN_LOGIN).status_code == 200
    assert log_in("root", PASSWORD, path=ADMIN_LOGIN).status_code == 429
    assert log_in("root", PASSWORD).status_code == 429
    assert logged_in(log_in("alice", PASSWORD))
