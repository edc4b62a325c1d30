"""StagePass: reserved-seat event ticketing."""

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import configure_engines, csrf, db, limiter, login_manager, migrate
from config import BASE_DIR, config_from_env


def create_app(config_class=None):
    """Build the application: config, extensions, blueprints, error handlers, commands."""
    config_class = config_class or config_from_env()
    app = Flask(
        __name__,
        instance_path=str(BASE_DIR / "instance"),
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
    )
    app.config.from_object(config_class)
    _refuse_insecure_production(app)

    trust_reverse_proxies(app)
    register_extensions(app)
    register_live_updates(app)
    register_audit_trail(app)
    register_languages(app)
    register_url_converters(app)
    register_blueprints(app)
    register_operations(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_template_helpers(app)
    register_commands(app)
    configure_logging(app)
    return app


def _refuse_insecure_production(app):
    if app.config.get("PRODUCTION") and not app.config.get("SECRET_KEY"):
        raise RuntimeError("SECRET_KEY must be set when STAGEPASS_ENV=production.")
    if app.config.get("PRODUCTION"):
        from app.services import tickets

        tickets.check_configuration(app.config)


def trust_reverse_proxies(app):
    """Behind TRUSTED_PROXY_COUNT proxies, take the client's address and scheme from what they add.

    With none configured, X-Forwarded-For is ignored: anyone could send one to pick the address
    that per-IP limits count.
    """
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)


def register_extensions(app):
    from app import models
    from app.auth.safety import send_guest_to_log_in
    from app.services import payments_provider

    db.init_app(app)
    models.hide_soft_deleted_rows()
    configure_engines(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.unauthorized_handler(send_guest_to_log_in)
    csrf.init_app(app)
    limiter.init_app(app)
    payments_provider.init_app(app)
    register_mail(app)


def register_mail(app):
    """Flask-Mailman (MAIL_BACKEND smtp, file or console), and emails queued for sending after each commit."""
    from app.services import mail

    mail.init_app(app)


def register_audit_trail(app):
    from app.services import audit

    audit.register(app)


def register_languages(app):
    from app import i18n

    i18n.register(app)


def register_live_updates(app):
    """Every committed seat change is published to Redis for the live seat maps."""
    from app.services import live

    live.init_app(app)


def register_url_converters(app):
    from app import routing

    routing.register(app)


def register_blueprints(app):
    from app.admin import bp as admin_bp
    from app.auth import bp as auth_bp
    from app.booking import bp as booking_bp
    from app.checkin import bp as checkin_bp

    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(booking_bp)
    app.register_blueprint(checkin_bp)


def register_operations(app):
    from app import ops

    ops.register(app)


def register_error_handlers(app):
    from app.errors import register

    register(app)


def register_security_headers(app):
    from app import security

    security.register(app)


def register_template_helpers(app):
    from app.templating import register

    register(app)


def register_commands(app):
    from app.cli import register

    register(app)


def configure_logging(app):
    """INFO and up to stderr under `flask run` too: a dead Redis or failing-open limits must show."""
    if not app.testing:  # pytest captures the logs itself
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
