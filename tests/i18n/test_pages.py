"""Do the pages come in German and Spanish, chosen by the account, the switcher or the browser?"""

import re

import pytest

from app.extensions import db
from tests.support import csrf_token, log_in

HTML_LANG = re.compile(r'<html lang="([^"]+)"')


def page_text(response):
    return response.get_data(as_text=True)


def lang_of(response):
    return HTML_LANG.search(page_text(response)).group(1)


@pytest.mark.parametrize(
    ("header", "lang", "heading"),
    [
        ("de-DE,de;q=0.9,en;q=0.5", "de", "Kommende Veranstaltungen"),
        ("es-ES,es;q=0.9", "es", "Próximos eventos"),
        ("fr-FR,fr;q=0.9", "en", "Upcoming events"),
        (None, "en", "Upcoming events"),
    ],
)
def test_the_browser_language_picks_the_page_language(client, factory, header, lang, heading):
    factory.event(name="Hamlet")
    headers = {"Accept-Language": header} if header else {}
    response = client.get("/", headers=headers)
    assert response.status_code == 200
    assert lang_of(response) == lang
    assert heading in page_text(response)


@pytest.mark.parametrize(
    ("path", "german", "spanish"),
    [
        ("/auth/login", "Neu hier?", "¿Es nuevo aquí?"),
        ("/auth/register", "Konto erstellen", "Crear una cuenta"),
    ],
)
def test_key_pages_in_german_and_spanish(client, path, german, spanish):
    german_page = client.get(path, headers={"Accept-Language": "de"})
    spanish_page = client.get(path, headers={"Accept-Language": "es"})
    assert (lang_of(german_page), lang_of(spanish_page)) == ("de", "es")
    assert german in page_text(german_page)
    assert spanish in page_text(spanish_page)


def test_event_page_and_seat_map_words_in_german(client, factory):
    event = factory.event(name="Hamlet")
    response = client.get(f"/events/{event.id}", headers={"Accept-Language": "de"})
    text = page_text(response)
    assert response.status_code == 200
    assert lang_of(response) == "de"
    assert "Plätze reservieren" in text  # the hold button
    assert "Reihe {row}, Platz {seat}" in text  # the seat map script's words, as data


def test_form_errors_in_spanish(client):
    response = client.post(
        "/auth/register",
        data={"csrf_token": csrf_token(client), "name": "", "email": "x", "password": "a", "password2": "b"},
        headers={"Accept-Language": "es"},
    )
    assert response.status_code == 400
    assert "Corrija los errores indicados abajo." in page_text(response)


def test_the_account_language_wins_over_the_browser(client, factory):
    buyer = factory.user()
    log_in(client, buyer)
    response = client.post(
        "/auth/account",
        data={"csrf_token": csrf_token(client, "/auth/account"), "language": "es"},
        headers={"Accept-Language": "de"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert buyer.language == "es"
    page = client.get("/my/bookings", headers={"Accept-Language": "de"})
    assert lang_of(page) == "es"
    assert "Mis reservas" in page_text(page)


def test_the_switcher_remembers_a_guests_choice_in_the_session(client):
    token = csrf_token(client)
    response = client.post("/auth/language", data={"csrf_token": token, "language": "de", "next": "/auth/register"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/auth/register")
    page = client.get("/auth/register", headers={"Accept-Language": "es"})
    assert lang_of(page) == "de"
    assert "Die Seiten werden jetzt auf Deutsch angezeigt." in page_text(page)


def test_the_switcher_stores_a_logged_in_users_choice(client, factory):
    buyer = factory.user()
    log_in(client, buyer)
    client.post("/auth/language", data={"csrf_token": csrf_token(client, "/"), "language": "de", "next": "/"})
    db.session.expire_all()
    assert buyer.language == "de"


@pytest.mark.parametrize("code", ["fr", "", "de'><script>", "x" * 500, "DE"])
def test_an_unknown_language_changes_nothing_and_falls_back(client, code):
    token = csrf_token(client)
    response = client.post("/auth/language", data={"csrf_token": token, "language": code, "next": "/"})
    assert response.status_code == 302
    page = client.get("/")
    assert lang_of(page) == "en"
    assert "That language is not available." in page_text(page)


def test_an_unknown_account_language_is_refused_with_a_form_error(client, factory):
    buyer = factory.user()
    log_in(client, buyer)
    response = client.post("/auth/account", data={"csrf_token": csrf_token(client, "/auth/account"), "language": "xx"})
    assert response.status_code == 400
    db.session.expire_all()
    assert buyer.language is None


@pytest.mark.parametrize(
    "header",
    ["de;q=abc", ";;;,,,===", "de-DE;q=1.5,es;q=-1", "*", "x" * 4000, "ü-Ö;q=0.5", "de;q=0.9;q=0.8, es;level=1"],
)
def test_a_forged_accept_language_never_fails(client, header):
    response = client.get("/", headers={"Accept-Language": header})
    assert response.status_code == 200
    assert lang_of(response) in ("en", "de", "es")


def test_a_stored_language_the_app_no_longer_has_falls_back(client, factory):
    buyer = factory.user()
    buyer.language = "fr"
    db.session.commit()
    log_in(client, buyer)
    response = client.get("/my/bookings", headers={"Accept-Language": "es"})
    assert lang_of(response) == "es"


def test_json_errors_of_the_seat_map_are_translated(client, factory):
    event = factory.event(name="Hamlet")
    buyer = factory.user()
    log_in(client, buyer)
    response = client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": []},
        headers={"Accept-Language": "de", "X-CSRFToken": csrf_token(client, f"/events/{event.id}")},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "Wählen Sie mindestens einen Platz."


@pytest.mark.parametrize("language", ["de", "es"])
def test_every_admin_and_buyer_page_renders_in_each_language(client, factory, admin, language):
    """Each translated page renders (a broken translation would fail only in its language)."""
    from tests.admin_support import paid_order, seat_ids

    event = factory.event(name="Hamlet")
    buyer = factory.user()
    order = paid_order(buyer, event, seat_ids(event, 2))
    headers = {"Accept-Language": language}
    admin_pages = [
        "/admin/",
        "/admin/events",
        "/admin/events/new",
        f"/admin/events/{event.id}",
        f"/admin/events/{event.id}/edit",
        f"/admin/events/{event.id}/cancel",
        f"/admin/events/{event.id}/delete",
        "/admin/bookings",
        f"/admin/orders/{order.reference}",
        f"/admin/orders/{order.reference}/cancel",
        "/admin/payments",
        "/admin/users",
        f"/admin/users/{buyer.id}/edit",
        "/admin/audit",
        "/auth/account",
    ]
    for path in admin_pages:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        assert lang_of(response) == language, path
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    log_in(client, buyer)
    for path in [
        "/",
        f"/events/{event.id}",
        "/my/bookings",
        f"/orders/{order.reference}",
        f"/orders/{order.reference}/tickets",
        "/no-such-page",
    ]:
        response = client.get(path, headers=headers)
        assert response.status_code == (404 if path == "/no-such-page" else 200), path
        assert lang_of(response) == language, path


def test_the_confirmation_email_is_written_in_the_accounts_language(factory):
    """The outbox row is rendered in the buyer's language, whatever the page that paid was in."""
    import sqlalchemy as sa

    from app.models import OutboxEmail
    from tests.admin_support import paid_order, seat_ids

    event = factory.event(name="Hamlet")
    buyer = factory.user()
    buyer.language = "es"
    db.session.commit()
    order = paid_order(buyer, event, seat_ids(event, 1))
    row = db.session.scalars(sa.select(OutboxEmail).where(OutboxEmail.order_id == order.id)).one()
    assert row.language == "es"
    assert row.subject == f"Sus entradas para Hamlet (pedido {order.reference})"
