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
import os
import re
import secrets
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.orm as so
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

from app.extensions import db
from app.models import Booking, BookingStatus, Order, OrderStatus, Seat, Ticket
from app.services.errors import DomainError

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
    """The key in instance/ticket_signing_key, made once (O_EXCL: concurrent workers agree on one)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(generate_signing_key() + "\n")
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
        verifying.verify(_b64url_decode(match["sig"]), signed.encode("ascii"))
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
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.booking_id == booking.id).with_for_update())
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
