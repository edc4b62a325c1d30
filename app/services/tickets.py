"""Tickets: one per confirmed seat, with an unguessable code and a QR payload the server signs.

The payload is `SP1.<kid>.<event_id>.<code>.<sig>`, where `sig` is the base64url (no padding)
Ed25519 signature over the ASCII bytes `SP1.<kid>.<event_id>.<code>`. Doors verify it with public
keys only (public_keys()), so a door phone never holds a key that can mint tickets. The signing
keys (TICKET_SIGNING_KEYS) are not SECRET_KEY: rotating either leaves sold tickets valid, since
every key id still listed still verifies. The format is agreed with the door: do not change it
alone.

Issuing and revoking run inside the caller's unit of work (the order, then its bookings, are
already locked), so a ticket exists exactly when its seat is confirmed and paid for.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import re
import secrets
from datetime import datetime
from pathlib import Path

import segno
import sqlalchemy as sa
import sqlalchemy.orm as so
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from flask_babel import gettext as _
from fpdf import FPDF
from markupsafe import Markup

from app.extensions import db
from app.models import Booking, BookingStatus, Order, OrderStatus, Seat, Ticket
from app.services.errors import DomainError, NotFound

PAYLOAD_VERSION = "SP1"
MAX_PAYLOAD_LENGTH = 200
CODE_LENGTH = 16
# Crockford's base32: no I, L, O or U, so a code read aloud or typed from paper is not misread.
CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KID_PATTERN = re.compile(r"[a-z0-9]{1,16}")
PAYLOAD_PATTERN = re.compile(
    r"SP1\.(?P<kid>[a-z0-9]{1,16})\.(?P<event_id>[1-9][0-9]{0,9})"
    r"\.(?P<code>[0-9A-HJKMNP-TV-Z]{16})\.(?P<sig>[A-Za-z0-9_-]{86})"
)
CODE_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{16}")
DEVELOPMENT_KID = "local"


class InvalidTicket(DomainError):
    code = "invalid"
    status = 404

    def __init__(self, message=None, **details):
        super().__init__(message or "This is not a StagePass ticket.", **details)


class SigningKeyError(RuntimeError):
    """TICKET_SIGNING_KEYS or TICKET_SIGNING_KID is malformed (raised at start-up in production)."""


# --- codes -----------------------------------------------------------------------------------


def new_code() -> str:
    """16 random Crockford base32 characters (80 bits) from the OS's secure generator."""
    return "".join(secrets.choice(CROCKFORD_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """A typed code as stored: upper-case, spaces and dashes removed, I/L read as 1 and O as 0."""
    cleaned = re.sub(r"[\s-]+", "", str(text or "")).upper()
    return cleaned.translate(str.maketrans({"I": "1", "L": "1", "O": "0"}))


def is_code(text: str) -> bool:
    """True when the (normalised) text has the shape of a ticket code."""
    return bool(CODE_PATTERN.fullmatch(text))


def grouped(code: str) -> str:
    """The code as people read it: XXXX-XXXX-XXXX-XXXX."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


# --- keys ------------------------------------------------------------------------------------


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_signing_keys(text: str) -> dict[str, Ed25519PrivateKey]:
    """'kid1:<base64url seed>,kid2:...' as private keys by kid; raises SigningKeyError if malformed."""
    keys = {}
    for item in (part.strip() for part in str(text or "").split(",")):
        if not item:
            continue
        kid, _, seed_text = item.partition(":")
        kid = kid.strip()
        if not KID_PATTERN.fullmatch(kid):
            raise SigningKeyError(f"Ticket signing key id {kid!r} must be 1 to 16 of a-z and 0-9.")
        if kid in keys:
            raise SigningKeyError(f"Ticket signing key id {kid!r} is listed twice.")
        try:
            seed = _b64url_decode(seed_text.strip())
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) != 32:
            raise SigningKeyError(f"Ticket signing key {kid!r} must be 32 bytes in base64url.")
        keys[kid] = Ed25519PrivateKey.from_private_bytes(seed)
    return keys


def generate_signing_key(kid: str = DEVELOPMENT_KID) -> str:
    """A new key in the TICKET_SIGNING_KEYS format ('kid:<base64url seed>')."""
    return f"{kid}:{_b64url_encode(secrets.token_bytes(32))}"


def _development_keys_text(path: Path) -> str:
    """The key in instance/ticket_signing_key, made once. Written aside and linked into place, so
    concurrent workers agree on one key and none reads a half-written file."""
    if not path.exists():
        aside = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
        aside.write_text(generate_signing_key() + "\n")
        aside.chmod(0o600)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            aside.unlink()
    return path.read_text().strip()


def check_configuration(config) -> None:
    """Production must have TICKET_SIGNING_KEYS, well formed, with TICKET_SIGNING_KID among them."""
    if not config.get("TICKET_SIGNING_KEYS"):
        raise SigningKeyError("TICKET_SIGNING_KEYS must be set when STAGEPASS_ENV=production.")
    _signing_kid(config, parse_signing_keys(config["TICKET_SIGNING_KEYS"]))


def _signing_kid(config, keys: dict) -> str:
    if not keys:
        raise SigningKeyError("TICKET_SIGNING_KEYS lists no key.")
    kid = config.get("TICKET_SIGNING_KID") or next(iter(keys))
    if kid not in keys:
        raise SigningKeyError(f"TICKET_SIGNING_KID {kid!r} is not in TICKET_SIGNING_KEYS.")
    return kid


def _keyring() -> tuple[str, dict[str, Ed25519PrivateKey]]:
    """(the kid new tickets use, every private key by kid), parsed once per app and key setting."""
    config = current_app.config
    text = config.get("TICKET_SIGNING_KEYS") or ""
    if not text and not config.get("PRODUCTION"):
        path = Path(config["TICKET_SIGNING_KEY_FILE"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _development_keys_text(path)
    cache_key = (text, config.get("TICKET_SIGNING_KID"))
    cached = current_app.extensions.get("ticket_keyring")
    if cached is None or cached[0] != cache_key:
        keys = parse_signing_keys(text)
        cached = (cache_key, _signing_kid(config, keys), keys)
        current_app.extensions["ticket_keyring"] = cached
    return cached[1], cached[2]


def public_keys() -> dict[str, str]:
    """Every verifying key as {kid: base64url raw 32-byte Ed25519 public key}: safe to give doors."""
    _, keys = _keyring()
    return {
        kid: _b64url_encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        for kid, key in keys.items()
    }


# --- payloads --------------------------------------------------------------------------------


def sign_payload(kid: str, event_id: int, code: str) -> str:
    """The QR payload for a ticket code, signed with the key `kid`."""
    _, keys = _keyring()
    signed = f"{PAYLOAD_VERSION}.{kid}.{int(event_id)}.{code}"
    return f"{signed}.{_b64url_encode(keys[kid].sign(signed.encode('ascii')))}"


def payload_for(ticket: Ticket) -> str:
    """The ticket's QR payload (signed with the key it was issued under)."""
    return sign_payload(ticket.kid, ticket.event_id, ticket.code)


def verify_payload(text) -> tuple[str, int, str]:
    """(kid, event_id, code) of a genuine payload; raises InvalidTicket for anything else."""
    if not isinstance(text, str) or len(text) > MAX_PAYLOAD_LENGTH:
        raise InvalidTicket()
    match = PAYLOAD_PATTERN.fullmatch(text.strip())
    if match is None:
        raise InvalidTicket()
    kid = match["kid"]
    verifying = public_key_objects().get(kid)
    if verifying is None:
        raise InvalidTicket()
    signed = text.strip().rsplit(".", 1)[0]
    try:
        signature = _b64url_decode(match["sig"])
        # The last of the 86 characters carries 2 bits and 4 ignored ones: only the canonical
        # spelling is accepted, so no edited payload verifies as the same ticket.
        if _b64url_encode(signature) != match["sig"]:
            raise InvalidTicket()
        verifying.verify(signature, signed.encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError):
        raise InvalidTicket() from None
    return kid, int(match["event_id"]), match["code"]


def public_key_objects() -> dict[str, Ed25519PublicKey]:
    """The verifying keys by kid."""
    _, keys = _keyring()
    return {kid: key.public_key() for kid, key in keys.items()}


# --- issuing and revoking --------------------------------------------------------------------


def issue_for_order(order: Order, now: datetime) -> list[Ticket]:
    """Give every confirmed seat of the (locked) order a ticket; seats that have one keep it."""
    if order.status != OrderStatus.CONFIRMED:
        return []
    confirmed = [b for b in order.bookings if b.status == BookingStatus.CONFIRMED]
    if not confirmed:
        return []
    existing = set(
        db.session.scalars(sa.select(Ticket.booking_id).where(Ticket.booking_id.in_([b.id for b in confirmed])))
    )
    kid, _ = _keyring()
    issued = []
    for booking in confirmed:
        if booking.id in existing:
            continue
        # 80 random bits: a collision is as likely as guessing a ticket; the unique key still refuses it.
        ticket = Ticket(
            booking_id=booking.id,
            order_id=order.id,
            event_id=booking.event_id,
            seat_id=booking.seat_id,
            code=new_code(),
            kid=kid,
            issued_at=now,
        )
        db.session.add(ticket)
        issued.append(ticket)
    db.session.flush()
    return issued


def revoke(booking: Booking, reason: str, now: datetime) -> Ticket | None:
    """Void the seat's ticket (inside the caller's unit of work); None when it had none."""
    ticket = db.session.scalar(
        sa.select(Ticket)
        .where(Ticket.booking_id == booking.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if ticket is None or ticket.is_void:
        return ticket
    ticket.revoked_at = now
    ticket.revoked_reason = str(reason or "")[:255]
    return ticket


def revoke_for_order(order: Order, reason: str, now: datetime) -> list[Ticket]:
    """Void every ticket of the order that is still valid (inside the caller's unit of work)."""
    tickets = db.session.scalars(
        sa.select(Ticket)
        .where(Ticket.order_id == order.id, Ticket.revoked_at.is_(None))
        .order_by(Ticket.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for ticket in tickets:
        ticket.revoked_at = now
        ticket.revoked_reason = str(reason or "")[:255]
    return list(tickets)


# --- reading ---------------------------------------------------------------------------------


def tickets_of(order: Order) -> list[Ticket]:
    """The order's tickets in seat order (as its bookings are), with seat, category and event loaded."""
    return list(
        db.session.scalars(
            sa.select(Ticket)
            .where(Ticket.order_id == order.id)
            .order_by(Ticket.seat_id, Ticket.id)
            .options(
                so.joinedload(Ticket.seat).joinedload(Seat.price_category),
                so.joinedload(Ticket.event),
            )
        )
    )


def find_by_code(text: str) -> Ticket | None:
    """The ticket with this typed or stored code (normalised first), if any."""
    code = normalise_code(text)
    if not is_code(code):
        return None
    return db.session.scalar(sa.select(Ticket).where(Ticket.code == code))


class NoTickets(NotFound):
    code = "no_tickets"


def valid_tickets_of(order: Order) -> list[Ticket]:
    """The order's tickets that still admit someone (not void)."""
    return [ticket for ticket in tickets_of(order) if not ticket.is_void]


def seat_text(seat: Seat) -> str:
    """'Row C, seat 5', in the reader's language."""
    return _("Row %(row)s, seat %(seat)s", row=seat.row, seat=seat.column)


# --- QR codes --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)  # ~5 KB each: ~5 MB per process at most
def qr_code(payload: str) -> segno.QRCode:
    """The payload as a QR code: error correction M (15%), a full QR code, never a Micro QR.

    Cached: a ticket's payload never changes (Ed25519 signatures are deterministic), and choosing
    the best of the 8 masks is most of the cost of a tickets page or PDF (~5 ms a code, pure Python).
    """
    return segno.make(payload, error="m", micro=False)


def qr_svg(payload: str, title: str = "") -> Markup:
    """Inline SVG of the payload's QR code: sized by CSS (viewBox only), no style attributes (CSP)."""
    svg = qr_code(payload).svg_inline(
        scale=1, border=4, dark="#000", light="#fff", omitsize=True, svgclass="ticket-qr", lineclass=None, title=title
    )
    return Markup(svg)


# --- the printable PDF -----------------------------------------------------------------------

PDF_QR_SIZE_MM = 90  # ~2 mm modules for a version 7 code: scans from paper at arm's length
# fontTools logs every subsetting step at INFO: a line per table of each font of each PDF.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)
# The PDF core fonts (Helvetica, Courier) cover Windows-1252: Western European text, "€", dashes
# and curly quotes. A TrueType font doubles the cost of a PDF (parsed and subset each time), so
# only text outside that set loads one.
CORE_FONT_ENCODING = "windows-1252"


def _core_fonts_cover(texts) -> bool:
    try:
        for text in texts:
            text.encode(CORE_FONT_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


class TicketPdf(FPDF):
    """A4 portrait, one page per ticket: core fonts, or the TrueType TICKET_PDF_FONT for other scripts."""

    def __init__(self, unicode_font: str | None):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_auto_page_break(False)
        self.set_creator("StagePass")
        self.core_fonts_encoding = CORE_FONT_ENCODING
        self.font_name = "Helvetica"
        if unicode_font:
            bold = Path(unicode_font).with_name(Path(unicode_font).stem + "-Bold.ttf")
            self.add_font("TicketSans", "", unicode_font)
            self.add_font("TicketSans", "B", str(bold) if bold.is_file() else unicode_font)
            self.font_name = "TicketSans"

    def text_fit(self, text: str) -> str:
        """Without a TrueType font, what the core fonts lack shows as '?' rather than failing the PDF."""
        if self.font_name == "Helvetica":
            return text.encode(CORE_FONT_ENCODING, "replace").decode(CORE_FONT_ENCODING)
        return text

    def centred(self, text: str, size: float, *, bold: bool = False, height: float | None = None, mono=False):
        """One centred paragraph (wrapped if long); mono for the code, which is always ASCII."""
        if mono:
            self.set_font("Courier", "B", size)
        else:
            self.set_font(self.font_name, "B" if bold else "", size)
        self.multi_cell(0, height or size * 0.5, self.text_fit(text), align="C", new_x="LMARGIN", new_y="NEXT")

    def qr(self, payload: str, size_mm: float) -> None:
        """Draw the QR code as filled rectangles, one per run of dark modules: vector, sharp in print."""
        matrix = qr_code(payload).matrix
        border = 4
        module = size_mm / (len(matrix) + 2 * border)
        left = (self.w - size_mm) / 2
        top = self.get_y()
        self.set_fill_color(255, 255, 255)
        self.rect(left, top, size_mm, size_mm, style="F")
        self.set_fill_color(0, 0, 0)
        for row_index, row in enumerate(matrix):
            y = top + (row_index + border) * module
            column = 0
            while column < len(row):
                if not row[column] & 1:
                    column += 1
                    continue
                start = column
                while column < len(row) and row[column] & 1:
                    column += 1
                # A hair taller than a module, so no seam shows between rows when rasterised.
                self.rect(left + (start + border) * module, y, (column - start) * module, module + 0.01, style="F")
        self.set_y(top + size_mm)


def _page_texts(ticket: Ticket, order: Order) -> dict[str, str]:
    from app.templating import when

    return {
        "event": ticket.event.name,
        "venue": ticket.event.venue,
        "date": when(ticket.event.date),
        "seat": seat_text(ticket.seat),
        "category": ticket.seat.price_category.name,
        "holder": _("Ticket holder: %(name)s", name=order.user.name),
        "order": _("Order %(reference)s", reference=order.reference),
        "note": _("One admission. Show this page, printed or on your phone, at the door."),
    }


def pdf_for_order(order: Order) -> bytes:
    """The order's valid tickets as one printable PDF, a page each; NoTickets if it has none."""
    valid = valid_tickets_of(order)
    if not valid:
        raise NoTickets(_("This order has no valid tickets."))
    pages = [(ticket, _page_texts(ticket, order)) for ticket in valid]
    title = _("Tickets for order %(reference)s", reference=order.reference)
    font = current_app.config.get("TICKET_PDF_FONT")
    needs_font = not _core_fonts_cover([title, *(text for _ticket, texts in pages for text in texts.values())])
    pdf = TicketPdf(font if needs_font and font and Path(font).is_file() else None)
    pdf.set_title(pdf.text_fit(title))
    for ticket, texts in pages:
        pdf.add_page()
        pdf.set_y(18)
        pdf.centred("StagePass", 11, bold=True)
        pdf.ln(4)
        pdf.centred(texts["event"], 22, bold=True, height=10)
        pdf.centred(texts["venue"], 13)
        pdf.centred(texts["date"], 13)
        pdf.ln(6)
        pdf.centred(texts["seat"], 20, bold=True)
        pdf.centred(texts["category"], 13)
        pdf.ln(6)
        pdf.qr(payload_for(ticket), PDF_QR_SIZE_MM)
        pdf.ln(4)
        pdf.centred(grouped(ticket.code), 18, mono=True)
        pdf.ln(6)
        pdf.centred(texts["holder"], 12)
        pdf.centred(texts["order"], 11)
        pdf.ln(6)
        pdf.centred(texts["note"], 10)
    return bytes(pdf.output())
