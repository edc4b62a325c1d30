"""The compiled catalogues the language tests read: built from the .po files if missing or stale."""

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from app.i18n import LANGUAGES
from tests.i18n.support import TRANSLATIONS


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    """`make test` compiles them first; a bare `pytest` in a fresh clone gets them here."""
    for code in LANGUAGES:
        po = TRANSLATIONS / code / "LC_MESSAGES" / "messages.po"
        if not po.exists():
            continue
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as source:
                catalog = read_po(source, locale=code)
            with mo.open("wb") as target:
                write_mo(target, catalog)
