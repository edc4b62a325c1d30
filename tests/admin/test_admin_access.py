"""Every admin route, enumerated from the URL map (so new routes are covered): admins only."""

import pytest
from werkzeug.routing import IntegerConverter

from tests.admin_support import client_of
from tests.support import csrf_token


def admin_routes(app):
    """(method, url) for every rule of the admin blueprint, with placeholder arguments."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        values = {
            name: 1 if isinstance(converter, IntegerConverter) else "SP-TEST"
            for name, converter in rule._converters.items()
        }
        _, url = rule.build(values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, url))
    return routes


def request(client, method, url):
    if method == "GET":
        return client.get(url)
    return client.post(url, data={"csrf_token": csrf_token(client, "/")})


def test_the_admin_blueprint_has_the_expected_routes(app):
    urls = {url for _, url in admin_routes(app)}
    for expected in (
        "/admin/",
        "/admin/events",
        "/admin/events/new",
        "/admin/bookings",
        "/admin/payments",
        "/admin/users",
    ):
        assert expected in urls
    assert len(urls) >= 15


def test_guests_are_sent_to_log_in_from_every_admin_route(app, client):
    for method, url in admin_routes(app):
        response = request(client, method, url)
        assert response.status_code == 302, (method, url, response.status_code)
        assert "/auth/login" in response.headers["Location"], (method, url)


def test_buyers_get_403_on_every_admin_route(app, client, factory, login):
    login(factory.user())
    for method, url in admin_routes(app):
        response = request(client, method, url)
        assert response.status_code == 403, (method, url, response.status_code)


def test_buyers_change_nothing_through_admin_posts(app, client, factory, login, db_session):
    event = factory.event(status="draft")
    login(factory.user())
    for path in (
        f"/admin/events/{event.id}/publish",
        f"/admin/events/{event.id}/cancel",
        f"/admin/events/{event.id}/delete",
    ):
        assert request(client, "POST", path).status_code == 403
    db_session.refresh(event)
    assert event.status == "draft" and event.deleted_at is None


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/events",
        "/admin/bookings",
        "/admin/payments",
        "/admin/users",
        "/admin/events/new",
        "/admin/users/new",
    ],
)
def test_admins_reach_the_admin_pages(client, factory, login, path):
    login(factory.admin())
    assert client.get(path).status_code == 200


def test_admin_nav_links_show_for_admins_only(client, factory, login):
    login(factory.user())
    page = client.get("/").get_data(as_text=True)
    assert "/admin/users" not in page
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    login(factory.admin())
    page = client.get("/admin/").get_data(as_text=True)
    for link in ("/admin/events", "/admin/bookings", "/admin/payments", "/admin/users"):
        assert f'href="{link}"' in page


def test_separate_clients_are_separate_people(app, factory):
    """Clients that shared the test's app context leaked Flask-Login's user cached in `g` from one
    to the next (a guest saw the admin's dashboard); the suite's FreshContextClient does not."""
    admin_client = client_of(app, factory.admin())
    guest = client_of(app)
    fan = client_of(app, factory.user())
    for _ in range(2):
        assert admin_client.get("/admin/").status_code == 200
        assert guest.get("/admin/").status_code == 302
        assert fan.get("/admin/").status_code == 403
