"""Redirect targets that stay on this site."""
from urllib.parse import urlsplit


def safe_next_url(target: str | None) -> str | None:
    """The target if it is a path on this site, else None (refuses //host, schemes, backslashes)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 32 for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
