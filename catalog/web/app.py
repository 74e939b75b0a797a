"""The browser review's web app and its local server: the guards every request passes.

Built on Flask (routing, Jinja2 templates that escape every value, flash messages) and served by
Werkzeug's threaded server on 127.0.0.1: one person's tool, not a public site. Every request
carries the sitting's key (from the printed address, then a cookie only this site gets), every
post a form key as well, and every page a policy that runs no script but the app's own file.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, abort, redirect, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

from catalog.errors import CatalogueBusy, FinprintError
from catalog.modelcard import ModelCard
from catalog.store import Store
from catalog.web import views
from catalog.web.images import Pictures
from catalog.web.pairs import Queue
from catalog.web.session import Session

COOKIE = "finprint_review"
# What a page may load and do: its own pictures, style and script, forms posted to itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(db_path: Path, card: ModelCard | None) -> Flask:
    """The review app for one catalogue (`card`: the model it was indexed with, for look-alikes)."""
    # Absolute: Flask resolves relative file names against the package, not the working folder.
    db_path = db_path.absolute()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secrets.token_hex(32)
    # The style and the script change only with finprint: not asked for again on every page.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 3600
    app.extensions["finprint"] = Session(
        db_path,
        card,
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(24),
        Queue(card),
        Pictures(db_path),
    )
    app.before_request(_require_keys)
    app.after_request(_guard)
    app.register_error_handler(CatalogueBusy, views.night_running)
    app.context_processor(views.common)
    for rule, view, methods in views.ROUTES:
        app.add_url_rule(rule, view_func=view, methods=methods)
    return app


def _require_keys() -> ResponseReturnValue | None:
    """Refuse a request without the sitting's key, and a post without the form key."""
    session = views.current_session()
    given = request.args.get("token")
    if given is not None and hmac.compare_digest(given, session.access_token):
        # Out of the address bar (and the history) into a cookie only this site is sent.
        rest = {k: v for k, v in request.args.items() if k != "token"}
        response = redirect(request.path + ("?" + urlencode(rest) if rest else ""))
        response.set_cookie(COOKIE, session.access_token, httponly=True, samesite="Strict")
        return response
    if not hmac.compare_digest(request.cookies.get(COOKIE, ""), session.access_token):
        return render_template("refused.html"), 403
    if request.method == "POST" and not hmac.compare_digest(request.form.get("csrf", ""), session.csrf_token):
        abort(403)
    return None


def _guard(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


class ReviewServer:
    """The app on a threaded local server: `url` (with the sitting's key) for the person."""

    def __init__(self, db_path: Path, card: ModelCard | None, host: str = "127.0.0.1", port: int = 0) -> None:
        with Store.open(db_path, read_only=True):
            pass  # a missing or foreign catalogue is said now, not on the first page
        self.app = create_app(db_path, card)
        # Werkzeug logs every request, the key's first visit included: not for a terminal.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True)
        except OSError as exc:
            raise FinprintError(
                f"cannot listen on {host}:{port} ({exc.strerror}). Give another port with --port."
            ) from exc
        shown = f"[{host}]" if ":" in host else host
        token = self.app.extensions["finprint"].access_token
        self.url = f"http://{shown}:{self._server.server_port}/?token={token}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
