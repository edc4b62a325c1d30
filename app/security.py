"""Security headers on every response, and the one inline stylesheet a page may carry."""

import secrets

from flask import current_app, g, request
from markupsafe import Markup

from app.services.events import COLOR_PATTERN

# Scripts and styles only from our own origin (Alpine's CSP build needs no eval). No inline style
# attributes: colours chosen per price category come from one <style> element per page, allowed
# by that response's nonce (category_styles), or are set through the CSSOM by Alpine.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'{style_nonce}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def csp_nonce() -> str:
    """This response's nonce for its inline <style> element (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def category_styles(categories) -> Markup:
    """A <style> element giving the elements of each price category (data-cat="<id>") its colour as --cat."""
    rules = "".join(
        f'[data-cat="{int(category.id)}"]{{--cat:{category.color}}}'
        for category in categories
        if COLOR_PATTERN.fullmatch(category.color or "")  # validated on save; never let CSS through
    )
    return Markup(f'<style nonce="{csp_nonce()}">{rules}</style>')


def content_security_policy() -> str:
    nonce = g.pop("csp_nonce", None)  # popped: tests run many requests in one app context
    return CONTENT_SECURITY_POLICY.format(style_nonce=f" 'nonce-{nonce}'" if nonce else "")


def register(app):
    app.add_template_global(category_styles)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", content_security_policy())
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if current_app.config.get("PRODUCTION") and request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
