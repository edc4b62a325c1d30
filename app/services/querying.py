"""Small helpers shared by the services' list queries."""

import sqlalchemy as sa


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column, text: str):
    """Case-insensitive 'column contains text', with LIKE's wildcards in the text taken literally."""
    return column.ilike(f"%{_escaped(text)}%", escape="\\")


def starts_with(column, text: str):
    """Case-insensitive 'column starts with text', LIKE's wildcards in the text taken literally."""
    return column.ilike(f"{_escaped(text)}%", escape="\\")


def any_contains(columns, text: str):
    return sa.or_(*(contains(column, text) for column in columns))
