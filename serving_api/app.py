"""The serving API: ``create_app(settings=None)`` builds the Flask app."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Optional

from flask import Flask, g, jsonify, request

import reelhouse
from reelhouse.bootstrap import Platform, bootstrap
from reelhouse.settings import Settings
from serving_api.public_urls import behind_proxies
from serving_api.unread_body import REQUEST_ID, UnreadBodyDrain

log = logging.getLogger("reelhouse.api")


def create_app(settings: Optional[Settings] = None, platform: Optional[Platform] = None) -> Flask:
    settings = settings or (platform.settings if platform else Settings())
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    platform = platform or bootstrap(settings)
    app = Flask(__name__)
    # Outermost: the drain of unread request bodies, which needs the server's own start_response
    # (serving_api/unread_body.py); then ProxyFix (the client's address and the address it used).
    app.wsgi_app = UnreadBodyDrain(behind_proxies(_MethodOverride(app.wsgi_app), settings.trusted_proxies),
                                   settings.upload_drain_max_bytes)
    app.extensions["reelhouse"] = platform
    app.config["JSON_SORT_KEYS"] = False
    log.info("serving API %s starting; %s", reelhouse.__version__, platform.engine_line())

    from serving_api import accounts, events, playback, problems, tus, uploads, videos, watch
    from serving_api.auth import csrf_token, principal, register_caller_rule

    problems.register(app)
    register_caller_rule(app)
    app.register_blueprint(uploads.bp)
    app.register_blueprint(tus.bp)
    app.register_blueprint(videos.bp)
    app.register_blueprint(playback.bp)
    app.register_blueprint(watch.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(accounts.bp)
    app.jinja_env.globals.update(csrf_token=csrf_token, caller=principal)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", version=reelhouse.__version__, engines=platform.engines())

    @app.before_request
    def _start_timer():
        g.started = time.monotonic()
        g.request_id = request.environ[REQUEST_ID] = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:12]

    @app.after_request
    def _log_request(response):
        elapsed_ms = (time.monotonic() - g.get("started", time.monotonic())) * 1000
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if request.path != "/healthz":
            ids = " ".join(f"{k}={v}" for k, v in (("upload", g.get("upload_id")), ("video", g.get("video_id")),
                                                    ("events", g.get("events"))) if v)
            # client: the address the trusted proxy saw (ProxyFix), or the peer's on a direct connection
            log.info("request %s %s %s -> %d %.1fms client=%s %s", g.get("request_id"), request.method,
                     request.path, response.status_code, elapsed_ms, request.remote_addr, ids)
        return response

    _start_upload_sweeper(platform)
    return app


class _MethodOverride:
    """tus clients behind proxies that allow only GET/POST tunnel PATCH/DELETE/HEAD (tus spec)."""

    ALLOWED = {"PATCH", "DELETE", "HEAD"}

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
        if environ.get("REQUEST_METHOD") == "POST" and override in self.ALLOWED:
            environ["REQUEST_METHOD"] = override
        return self.app(environ, start_response)


def _start_upload_sweeper(platform: Platform) -> None:
    """At start-up, and every few seconds after, probe the videos a shutdown or a crash left in
    ``probing`` (each video's probe lease keeps the API's processes from probing one twice).

    Every API process also offers to sweep expired uploads; a lease lets one of them do it per
    interval (it is left to expire rather than released, so the others skip the rest of the interval)."""
    from reelhouse.ports import CoordinationKeys

    interval = max(5, min(60, platform.settings.upload_ttl_s // 4))
    probe_every = min(interval, 10)

    def loop():
        wait, last_sweep = 0.0, time.monotonic()
        while not platform.closed.wait(wait):  # ends with its platform (tests build many)
            wait = probe_every
            try:
                platform.uploads.prober.recover()
            except Exception:  # never take the API down; the next round retries
                log.exception("probe recovery failed")
            if time.monotonic() - last_sweep < interval:
                continue
            last_sweep = time.monotonic()
            try:
                if platform.coordination.acquire(CoordinationKeys.UPLOAD_SWEEP, interval * 1000, holder="sweeper"):
                    platform.uploads.sweep_expired()
            except Exception:  # a sweep must never take the API down; the next interval retries
                log.exception("upload sweep failed")

    platform.start_loop("upload-sweeper", loop)
