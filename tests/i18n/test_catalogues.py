"""Are the German and Spanish catalogues complete for every string the code and templates can show?

The strings are extracted afresh (as `make translations` does) into a temporary file and compared
with the committed .po files: a string missing from a catalogue, an empty or fuzzy translation, or
a translation whose %(name)s placeholders differ from the English all fail here.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.i18n.support import ROOT, TRANSLATED, TRANSLATIONS, read_catalogue


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """The catalogue template of the code as it is now (pybabel extract into a temporary directory)."""
    target = tmp_path_factory.mktemp("babel") / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [
            str(pybabel),
            "extract",
            "-F",
            str(TRANSLATIONS / "babel.cfg"),
            "-k",
            "lazy_gettext",
            "-k",
            "_l",
            "--no-location",
            "-o",
            str(target),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return read_catalogue(target)


def ids(catalog):
    return {message.id if isinstance(message.id, str) else message.id[0] for message in catalog if message.id}


def test_the_extraction_finds_the_pages_strings(extracted):
    found = ids(extracted)
    assert len(found) > 300
    assert {"Upcoming events", "Log in", "Language", "Hold seats"} <= found


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_string_is_in_the_catalogue(extracted, language):
    catalogue = read_catalogue(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", locale=language)
    missing = sorted(ids(extracted) - ids(catalogue))
    assert missing == [], f"{len(missing)} strings missing from {language}: run `make translations` and translate"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_entry_is_translated_and_none_is_fuzzy(language):
    catalogue = read_catalogue(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", locale=language)
    untranslated, fuzzy = [], []
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert untranslated == [], f"{len(untranslated)} untranslated in {language}"
    assert fuzzy == [], f"{len(fuzzy)} fuzzy in {language}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders(language):
    catalogue = read_catalogue(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", locale=language)
    problems = [(message.id, [str(error) for error in errors]) for message, errors in catalogue.check() if errors]
    assert problems == []
