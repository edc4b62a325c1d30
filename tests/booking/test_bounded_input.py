"""Numbers and query strings from URLs: whatever they hold, a page answers 404 or shows a list, never 500."""

import html
import re

import pytest

from app.routing import MAX_ID
from tests.admin_support import paid_order, seat_ids
from tests.support import csrf_token

HUGE = "9" * 20
JUST_TOO_BIG = str(MAX_ID + 1)
LINKS = re.compile(r'href="([^"]*page=\d+[^"]*)"')


def page_links(response):
    return [html.unescape(link) for link in LINKS.findall(response.get_data(as_text=True))]


@pytest.mark.parametrize("number", [HUGE, JUST_TOO_BIG, "9" * 5000])
@pytest.mark.parametrize(
    "path",
    [
        "/admin/events/{}",
        "/admin/events/{}/edit",
        "/admin/events/{}/bookings",
        "/admin/events/{}/bookings.csv",
        "/admin/users/{}/edit",
        "/admin/bookings/{}/cancel",
        "/events/{}",
        "/api/events/{}/seats",
    ],
)
def test_ids_too_big_for_the_database_are_404(client, factory, login, path, number):
    if path.startswith("/admin/"):
        login(factory.admin())
    assert client.get(path.format(number)).status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/admin/events/{}", "/admin/users/{}/edit", "/admin/bookings/{}/cancel", "/events/{}", "/api/events/{}/seats"],
)
def test_the_largest_id_is_looked_up_and_not_found(client, factory, login, path):
    if path.startswith("/admin/"):
        login(factory.admin())
    assert client.get(path.format(MAX_ID)).status_code == 404


def test_posts_to_huge_ids_are_404(client, factory, login):
    login(factory.user())
    token = csrf_token(client, "/")
    assert (
        client.post(f"/api/events/{HUGE}/holds", json={"seat_ids": [1]}, headers={"X-CSRFToken": token}).status_code
        == 404
    )
    client.post("/auth/logout", data={"csrf_token": token})
    login(factory.admin())
    token = csrf_token(client, "/admin/")
    assert client.post(f"/admin/events/{HUGE}/publish", data={"csrf_token": token}).status_code == 404


@pytest.mark.parametrize("path", ["/admin/events", "/admin/bookings", "/admin/users", "/admin/payments"])
@pytest.mark.parametrize("page", [HUGE, JUST_TOO_BIG, str(2**64), "-" + HUGE, "0", "abc"])
def test_any_page_number_shows_a_list(client, admin, factory, path, page):
    event = factory.event(rows=1, columns=2)
    paid_order(factory.user(), event, seat_ids(event))
    assert client.get(f"{path}?page={page}").status_code == 200


@pytest.fixture
def three_events_two_per_page(factory, monkeypatch):
    monkeypatch.setattr("app.admin.events.EVENTS_PER_PAGE", 2)
    return [factory.event(name=f"Gala {n}", rows=1, columns=1) for n in range(3)]


def test_a_page_past_the_end_shows_the_last_page(client, admin, three_events_two_per_page):
    for page in ("3", "99", HUGE):
        response = client.get(f"/admin/events?page={page}")
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "Page 2 of 2" in body and "Gala 2" in body, page


def test_the_event_filter_ignores_ids_no_event_can_have(client, admin, factory):
    event = factory.event(name="Jazz Night", rows=1, columns=1)
    order = paid_order(factory.user(), event, seat_ids(event))
    for value in (HUGE, JUST_TOO_BIG, "-" + HUGE):
        response = client.get(f"/admin/payments?event={value}")
        assert response.status_code == 200 and order.reference in response.get_data(as_text=True), value
    response = client.get(f"/admin/payments?event={MAX_ID}")
    assert response.status_code == 200 and order.reference not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "extra", ["_method=POST", "endpoint=x", "event_id=5", "page=1&page=2", "_external=1", "_anchor=x"]
)
def test_page_links_keep_only_the_filters(client, admin, three_events_two_per_page, extra):
    response = client.get(f"/admin/events?q=Gala&status=published&{extra}")
    assert response.status_code == 200
    (link,) = page_links(response)
    assert link.startswith("/admin/events?") and sorted(link.split("?")[1].split("&")) == [
        "page=2",
        "q=Gala",
        "status=published",
    ]


def test_page_links_of_an_events_bookings_keep_the_event(client, admin, factory, monkeypatch):
    monkeypatch.setattr("app.admin.bookings.BOOKINGS_PER_PAGE", 1)
    event = factory.event(rows=1, columns=2)
    paid_order(factory.user(), event, seat_ids(event))
    response = client.get(f"/admin/events/{event.id}/bookings?status=confirmed&endpoint=x")
    assert page_links(response) == [f"/admin/events/{event.id}/bookings?status=confirmed&page=2"]
