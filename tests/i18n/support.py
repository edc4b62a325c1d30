"""Where the catalogues live, and how to read them."""

from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "app" / "translations"
TRANSLATED = ("de", "es")


def read_catalogue(path, locale=None):
    with open(path, "rb") as source:
        return read_po(source, locale=locale)
