"""While the database cannot answer, a page is a 503 with Retry-After ("back in a moment"), not a 500.

The database is made unreachable for real: Django's connection is closed and pointed at a port nothing
listens on (what a PostgreSQL or PgBouncer restart looks like to the app), and the request goes through
the WSGI application with Django's own error handling (``handler500``), as the server runs it. The data
is committed (``transaction=True``): the test transaction could not survive its connection being closed.
"""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test import RequestFactory

from bench.server import free_port
from billing.views.unavailable import RETRY_AFTER_SECONDS, server_error
from tests.api.test_wsgi import call
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def signed_in(client, user):
    WorkspaceFactory(owner=user)
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


@pytest.fixture
def database_down():
    """Django's connection refused until the block ends: it reconnects by itself afterwards."""

    def down():
        connection.close()
        connection.settings_dict["PORT"] = str(free_port())

    port = connection.settings_dict["PORT"]
    down.port = port
    yield down
    connection.settings_dict["PORT"] = port
    connection.close()


def test_a_page_while_the_database_is_down_is_a_503_with_retry_after_then_works_again(signed_in, database_down, caplog):
    page = "/settings/billing/"
    assert call(page, headers=signed_in, per_request_cleanup=True)[0] == 200
    up = database_down.port
    database_down()

    pages_log = logging.getLogger("billing.pages")  # "billing" does not propagate to caplog's root handler
    pages_log.addHandler(caplog.handler)
    try:
        status, headers, content = call(page, headers=signed_in, per_request_cleanup=True)
    finally:
        pages_log.removeHandler(caplog.handler)

    assert status == 503, content[:300]
    assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert headers["Cache-Control"] == "no-store"
    assert "Back in a moment" in content.decode() and "Something went wrong" not in content.decode()
    assert "database unavailable" in caplog.text and page in caplog.text
    connection.settings_dict["PORT"] = up  # PostgreSQL is back: the next request reconnects by itself
    assert call(page, headers=signed_in, per_request_cleanup=True)[0] == 200


def test_a_form_posted_while_the_database_is_down_is_a_503_too(signed_in, database_down):
    database_down()
    status, headers, _ = call("/settings/billing/", method="POST", headers=signed_in, per_request_cleanup=True)
    assert (status, headers["Retry-After"]) == (503, str(RETRY_AFTER_SECONDS))


def test_any_other_error_is_still_the_500_page():
    request = RequestFactory().get("/settings/billing/")
    try:
        raise ValueError("a bug, not the database")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode() and "Retry-After" not in response
