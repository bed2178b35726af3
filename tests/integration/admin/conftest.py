"""Fixtures of the admin's tests: a superuser's client and a viewer's."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.admin import login


@pytest.fixture
def client() -> Client:
    return login(superuser=True, name="admin")


@pytest.fixture
def viewer() -> Client:
    """Staff who may look at jobs and dead letters but act on nothing."""
    return login("view_job", "view_deadletter", name="viewer")
