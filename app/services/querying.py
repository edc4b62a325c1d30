"""Small helpers shared by the services' list queries."""

import sqlalchemy as sa


def contains(column, text: str):
    """Case-insensitive 'column contains text', with LIKE's wildcards in the text taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def any_contains(columns, text: str):
    return sa.or_(*(contains(column, text) for column in columns))
