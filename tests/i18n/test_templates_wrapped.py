"""Is every word a template shows to a reader inside _()? (Text outside it never reaches a catalogue.)"""

import re

from tests.i18n.support import ROOT

# Words that are the same in every language: the brand, the time zone, a code's shape.
SAME_IN_EVERY_LANGUAGE = {"StagePass", "Stage", "Pass", "UTC", "XXXX-XXXX-XXXX-XXXX", "order."}
READER_ATTRIBUTES = r"title|aria-label|placeholder|alt|aria-description"


def bare_words(source: str) -> list[str]:
    """Text nodes and reader-facing attributes left after removing Jinja tags, comments and scripts."""
    text = re.sub(r"\{#.*?#\}", " ", source, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    found = [node.strip() for node in re.findall(r">([^<]*)<", text)]
    found += re.findall(rf'\s(?:{READER_ATTRIBUTES})="([^"]*)"', text)
    words = []
    for chunk in found:
        for word in re.findall(r"[A-Za-z][A-Za-z.'-]+", chunk.replace("&lt;", " ").replace("&gt;", " ")):
            if word not in SAME_IN_EVERY_LANGUAGE:
                words.append(word)
    return words


def test_no_template_shows_untranslated_text():
    offenders = {}
    for path in sorted((ROOT / "templates").rglob("*.html")):
        words = bare_words(path.read_text())
        if words:
            offenders[str(path.relative_to(ROOT))] = words
    assert offenders == {}


def test_the_check_sees_bare_text():
    assert bare_words('<p>Hello <b>{{ name }}</b></p><input placeholder="Search">') == ["Hello", "Search"]
    assert bare_words("<p>{{ _('Hello') }}</p>{# a note #}<span>UTC</span>") == []
