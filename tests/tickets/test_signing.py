"""Ticket codes and signed QR payloads: what the door can trust without a database."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.services import tickets

CODE = "0123456789ABCDEF"


def test_codes_are_sixteen_crockford_characters_and_differ():
    codes = {tickets.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 16 and set(code) <= set(tickets.CROCKFORD_ALPHABET)
        assert not set(code) & set("ILOU")


@pytest.mark.parametrize(
    "typed",
    ["0123-4567-89ab-cdef", " 0123 4567 89AB CDEF ", "O123-4567-89AB-CDEF", "0123456789abcdef", "0123--4567 89ab-cdef"],
)
def test_typed_codes_are_normalised(typed):
    assert tickets.normalise_code(typed) == CODE


def test_i_and_l_read_as_one():
    assert tickets.normalise_code("0I23-4567-89AB-CDEL") == "01234567" + "89ABCDE1"


def test_codes_are_shown_grouped():
    assert tickets.grouped(CODE) == "0123-4567-89AB-CDEF"


def test_a_signed_payload_verifies_and_names_its_event_and_code(app):
    payload = tickets.sign_payload("test", 42, CODE)
    assert payload.startswith(f"SP1.test.42.{CODE}.")
    assert len(payload.rsplit(".", 1)[1]) == 86
    assert tickets.verify_payload(payload) == ("test", 42, CODE)


def test_the_public_key_alone_verifies_a_payload(app):
    payload = tickets.sign_payload("test", 7, CODE)
    signed, signature = payload.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(tickets.public_keys()["test"] + "=")
    assert len(raw) == 32
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.urlsafe_b64decode(signature + "=="), signed.encode())


def _flip(text, index):
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def bad_payloads():
    good = tickets.sign_payload("test", 42, CODE)
    prefix, signature = good.rsplit(".", 1)
    return {
        "empty": "",
        "garbled": "not a ticket at all",
        "truncated": good[:-5],
        "oversized": good + "A" * 200,
        "other event": good.replace(".42.", ".43.", 1),
        "other code": good.replace(CODE, "0123456789ABCDEG", 1),
        "flipped signature": f"{prefix}.{_flip(signature, 10)}",
        "unknown kid": good.replace("SP1.test.", "SP1.other.", 1),
        "wrong version": good.replace("SP1.", "SP2.", 1),
        "lower-case code": good.replace(CODE, CODE.lower(), 1),
        "extra part": good + ".x",
        "non-ascii": good.replace("SP1", "SР1", 1),
        "not text": 42,
    }


BAD_PAYLOADS = [
    "empty",
    "garbled",
    "truncated",
    "oversized",
    "other event",
    "other code",
    "flipped signature",
    "unknown kid",
    "wrong version",
    "lower-case code",
    "extra part",
    "non-ascii",
    "not text",
]


@pytest.mark.parametrize("name", BAD_PAYLOADS)
def test_anything_but_a_genuine_payload_is_invalid(app, name):
    with pytest.raises(tickets.InvalidTicket) as refused:
        tickets.verify_payload(bad_payloads()[name])
    assert refused.value.code == "invalid" and refused.value.status == 404


def test_a_payload_signed_by_someone_elses_key_is_invalid(app):
    with app.app_context():
        app.config["TICKET_SIGNING_KEYS"] = tickets.generate_signing_key("test")
        forged = tickets.sign_payload("test", 42, CODE)
    app.config["TICKET_SIGNING_KEYS"] = "test:xBKcHgi9X8CnR7YxRBspZAifXRuCyp_AQd6EVJkAROA"
    with pytest.raises(tickets.InvalidTicket):
        tickets.verify_payload(forged)


def test_rotating_keys_keeps_old_tickets_valid(app):
    old = tickets.sign_payload("test", 42, CODE)
    app.config["TICKET_SIGNING_KEYS"] = f"{app.config['TICKET_SIGNING_KEYS']},{tickets.generate_signing_key('k2026')}"
    app.config["TICKET_SIGNING_KID"] = "k2026"
    assert tickets.verify_payload(old) == ("test", 42, CODE)
    new = tickets.sign_payload("k2026", 42, CODE)
    assert tickets.verify_payload(new) == ("k2026", 42, CODE)
    assert set(tickets.public_keys()) == {"test", "k2026"}


@pytest.mark.parametrize(
    "setting",
    ["nokey", "UPPER:" + "A" * 43, "k:short", "k:" + "!" * 43, "k:" + "A" * 43 + ",k:" + "A" * 43],
)
def test_malformed_signing_keys_are_refused(setting):
    with pytest.raises(tickets.SigningKeyError):
        tickets.parse_signing_keys(setting)


def test_production_refuses_to_start_without_ticket_signing_keys(monkeypatch):
    from app import create_app
    from config import ProductionConfig

    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", "a-secret")
    monkeypatch.setattr(ProductionConfig, "TICKET_SIGNING_KEYS", "")
    with pytest.raises(tickets.SigningKeyError, match="TICKET_SIGNING_KEYS"):
        create_app(ProductionConfig)
    monkeypatch.setattr(ProductionConfig, "TICKET_SIGNING_KEYS", "k1:" + "A" * 43)
    monkeypatch.setattr(ProductionConfig, "TICKET_SIGNING_KID", "k2")
    with pytest.raises(tickets.SigningKeyError, match="TICKET_SIGNING_KID"):
        create_app(ProductionConfig)


def test_development_generates_one_key_file_and_keeps_it(app, tmp_path):
    app.config["TICKET_SIGNING_KEYS"] = app.config["TICKET_SIGNING_KID"] = ""
    app.config["TICKET_SIGNING_KEY_FILE"] = str(tmp_path / "instance" / "ticket_signing_key")
    first = tickets.public_keys()
    assert list(first) == ["local"]
    assert (tmp_path / "instance" / "ticket_signing_key").stat().st_mode & 0o077 == 0
    assert tickets.public_keys() == first


def test_workers_starting_together_agree_on_one_development_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "ticket_signing_key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: tickets._development_keys_text(path), range(32)))
    assert len(keys) == 1 and tickets.parse_signing_keys(keys.pop()).keys() == {"local"}
    assert [p.name for p in tmp_path.iterdir()] == ["ticket_signing_key"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=260), st.from_regex(tickets.PAYLOAD_PATTERN, fullmatch=True)))
def test_random_text_is_invalid_never_an_error(app, text):
    with pytest.raises(tickets.InvalidTicket):
        tickets.verify_payload(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0, max_value=200), replacement=st.characters(max_codepoint=0x7F))
def test_any_one_character_changed_is_invalid(app, position, replacement):
    genuine = tickets.sign_payload("test", 42, CODE)
    position %= len(genuine)
    edited = genuine[:position] + replacement + genuine[position + 1 :]
    if edited == genuine:
        return
    with pytest.raises(tickets.InvalidTicket):
        tickets.verify_payload(edited)


def test_a_signature_spelt_differently_in_its_ignored_bits_is_invalid(app):
    genuine = tickets.sign_payload("test", 42, CODE)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(genuine[-1])
    # Same top 2 bits, other low 4 bits: decodes to the same 64 bytes.
    twins = [alphabet[(last & 0b110000) | low] for low in range(16) if (last & 0b110000) | low != last]
    for twin in twins:
        with pytest.raises(tickets.InvalidTicket):
            tickets.verify_payload(genuine[:-1] + twin)
