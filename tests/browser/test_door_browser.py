"""The door page in Chromium with a fake camera that films a real QR code.

Chromium reads a Y4M video made here from the ticket's signed payload (segno's QR matrix drawn
into 4:2:0 frames: the code for two seconds, then an empty view, looping), so the page's real
jsQR code decodes a real image. A separate Chromium per video: the shared one has no camera.
"""

from pathlib import Path

import pytest
import segno
import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import CheckinConflict, Ticket, utcnow
from app.services import checkin, tickets
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, watched_page
from tests.door.support import sold_tickets, staff_user
from tests.support import PASSWORD

pytestmark = pytest.mark.browser

WIDTH, HEIGHT, FPS = 640, 480, 10
MODULE_PX = 8
QR_SECONDS, EMPTY_SECONDS = 2, 2


def qr_video(payload: str, path: Path) -> Path:
    """A looping Y4M video of the payload's QR code (black on white, quiet zone included), then nothing."""
    matrix = segno.make(payload, error="m").matrix
    size = len(matrix) * MODULE_PX
    left, top = (WIDTH - size) // 2, (HEIGHT - size) // 2
    white_row = b"\xff" * WIDTH
    code_rows = []
    for row in matrix:
        line = bytearray(white_row)
        for column, dark in enumerate(row):
            if dark:
                start = left + column * MODULE_PX
                line[start : start + MODULE_PX] = b"\x00" * MODULE_PX
        code_rows.extend([bytes(line)] * MODULE_PX)
    luma_with_code = white_row * top + b"".join(code_rows) + white_row * (HEIGHT - top - size)
    luma_empty = white_row * HEIGHT
    chroma = b"\x80" * (WIDTH // 2 * HEIGHT // 2 * 2)  # U and V planes: no colour
    with open(path, "wb") as video:
        video.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for luma, seconds in ((luma_with_code, QR_SECONDS), (luma_empty, EMPTY_SECONDS)):
            for _ in range(FPS * seconds):
                video.write(b"FRAME\n" + luma + chroma)
    return path


@pytest.fixture
def camera_page(playwright, live_server, tmp_path, request):
    """open(payload) -> a page in a Chromium whose camera films that payload's QR code."""
    browsers = []

    def open_page(payload):
        video = qr_video(payload, tmp_path / f"ticket-{len(browsers)}.y4m")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
            ],
        )
        browsers.append(browser)
        context = browser.new_context(viewport={"width": 412, "height": 915}, permissions=["camera"])
        page = watched_page(context, live_server, timeout_ms=15_000)
        request.node.browser_contexts = [*getattr(request.node, "browser_contexts", []), context]
        return page

    yield open_page
    for browser in browsers:
        browser.close()


def log_in(page, user):
    page.goto(page.base + "/auth/login")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#submit")


def open_door(page, event, door="North door"):
    page.goto(f"{page.base}/checkin/{event.id}")
    page.fill("#door-name", door)
    page.locator("#door-name").dispatch_event("change")
    page.click("#camera-start")


def fresh(ticket):
    db.session.expire_all()
    return db.session.get(Ticket, ticket.id)


def test_the_camera_admits_a_ticket_then_says_already_checked_in(camera_page, factory):
    event = factory.event(name="Camera Night", rows=2, columns=3)
    ticket, _ = sold_tickets(factory, event, 2)
    staff = staff_user(factory)
    page = camera_page(tickets.payload_for(ticket))
    log_in(page, staff)
    assert page.url.endswith("/checkin/")
    open_door(page, event)

    result = page.locator("#door-result")
    expect(result).to_have_attribute("data-result", "admitted")
    expect(result).to_contain_text("Admitted")
    expect(result).to_contain_text(f"{ticket.seat.label} · Standard")
    expect(page.locator("#checked-in-count")).to_have_text("1")
    expect(page.locator("#sold-count")).to_have_text("2")
    assert fresh(ticket).checked_in_door == "North door"

    # The code leaves the view and comes back: the second scan is refused, naming the first door.
    expect(result).to_have_attribute("data-result", "already_checked_in", timeout=20_000)
    expect(result).to_contain_text("North door")
    assert page.evaluate("localStorage.getItem('stagepass.door')") == "North door"
    assert page.errors == []


def test_a_typed_code_is_the_fallback(camera_page, factory):
    event = factory.event(rows=1, columns=2)
    ticket, other = sold_tickets(factory, event, 2)
    page = camera_page("not a ticket")
    log_in(page, staff_user(factory))
    page.goto(f"{page.base}/checkin/{event.id}")
    page.fill("#door-name", "Side")
    page.fill("#typed-code", tickets.grouped(ticket.code).lower())
    page.click("#typed-submit")
    result = page.locator("#door-result")
    expect(result).to_have_attribute("data-result", "admitted")
    other.revoked_at = utcnow()
    db.session.commit()
    for code, expected in ((other.code, "void"), ("ZZZZ-ZZZZ", "invalid"), (ticket.code, "already_checked_in")):
        page.fill("#typed-code", code)
        page.click("#typed-submit")
        expect(result).to_have_attribute("data-result", expected)
    expect(result).to_contain_text("Side")
    assert page.errors == []


def test_offline_scans_are_verified_kept_and_sent_when_the_network_is_back(camera_page, factory):
    """Offline: accepted (signature checked locally) and queued; seen twice -> a conflict at once;
    another door admitted it meanwhile -> a conflict on sync, on the page and on the admin's."""
    event = factory.event(name="Offline Night", rows=1, columns=3)
    ticket, _ = sold_tickets(factory, event, 2)
    staff = staff_user(factory)
    page = camera_page(tickets.payload_for(ticket))
    log_in(page, staff)
    page.goto(f"{page.base}/checkin/{event.id}")
    page.context.set_offline(True)
    page.fill("#door-name", "Back door")
    page.click("#camera-start")

    result = page.locator("#door-result")
    expect(result).to_have_attribute("data-result", "offline")
    expect(result).to_contain_text("Accepted offline, not yet confirmed")
    expect(page.locator("#door-network")).to_contain_text("Offline")
    expect(page.locator("#door-queue")).to_contain_text("1")
    assert fresh(ticket).checked_in_at is None  # nothing reached the server

    # The same ticket again while still offline: reported at once, and queued for the admins' record.
    expect(result).to_have_attribute("data-result", "conflict", timeout=20_000)
    expect(page.locator("#door-conflicts")).to_contain_text(ticket.code)
    expect(page.locator("#door-queue")).to_contain_text("2")

    # Meanwhile the front door, online, admits the same ticket.
    checkin.check_in(ticket.code, event.id, "Front door", staff, utcnow())
    page.click("#camera-stop")
    page.context.set_offline(False)
    expect(page.locator("#door-network")).to_contain_text("Online")
    expect(page.locator("#door-queue")).to_be_hidden()
    expect(result).to_have_attribute("data-result", "conflict")
    expect(page.locator("#door-conflicts")).to_contain_text("Front door")
    conflicts = db.session.scalars(sa.select(CheckinConflict)).all()
    assert [(c.ticket_id, c.door, c.first_door) for c in conflicts] == [(ticket.id, "Back door", "Front door")] * 2
    assert page.errors == []


def test_offline_then_online_admits(camera_page, factory):
    """The plain case: accepted offline, admitted by the server once the network is back."""
    event = factory.event(rows=1, columns=2)
    ticket, _ = sold_tickets(factory, event, 2)
    page = camera_page(tickets.payload_for(ticket))
    log_in(page, staff_user(factory))
    page.goto(f"{page.base}/checkin/{event.id}")
    page.context.set_offline(True)
    page.fill("#door-name", "Gate 2")
    page.click("#camera-start")
    expect(page.locator("#door-result")).to_have_attribute("data-result", "offline")
    page.click("#camera-stop")
    page.context.set_offline(False)
    expect(page.locator("#door-queue")).to_be_hidden()
    expect(page.locator("#checked-in-count")).to_have_text("1")
    stored = fresh(ticket)
    assert stored.checked_in_door == "Gate 2" and checkin.conflicts(event.id) == []
    assert page.errors == []


def test_offline_the_page_itself_refuses_forged_typed_and_other_events_tickets(page, factory):
    """Without the network the signature check runs in the page (WebCrypto Ed25519): a forged
    payload, another event's genuine one and a typed code are not accepted offline; nothing is queued."""
    event = factory.event(rows=1, columns=2)
    other = factory.event(name="Elsewhere", rows=1, columns=2)
    ticket = sold_tickets(factory, event, 1)[0]
    elsewhere = sold_tickets(factory, other, 1)[0]
    log_in(page, staff_user(factory))
    page.goto(f"{page.base}/checkin/{event.id}")
    page.fill("#door-name", "Gate 3")
    page.context.set_offline(True)
    genuine = tickets.payload_for(ticket)
    forged = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    result = page.locator("#door-result")
    for code, expected, text in (
        (forged, "invalid", "Not a StagePass ticket"),
        (tickets.payload_for(elsewhere), "wrong_event", "Wrong event"),
        (ticket.code, "invalid", "typed codes cannot be checked"),
        (genuine, "offline", "Accepted offline"),
    ):
        page.fill("#typed-code", code)
        page.click("#typed-submit")
        expect(result).to_have_attribute("data-result", expected)
        expect(result).to_contain_text(text)
    expect(page.locator("#door-queue")).to_contain_text("1")
    page.context.set_offline(False)
    expect(page.locator("#door-queue")).to_be_hidden()
    expect(page.locator("#checked-in-count")).to_have_text("1")
    assert fresh(ticket).checked_in_door == "Gate 3" and fresh(elsewhere).checked_in_at is None
    assert page.errors == []
