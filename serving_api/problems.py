"""Errors as JSON problem documents (RFC 9457) with a stable ``code`` and the ``field`` at fault."""
from __future__ import annotations

import logging
import math

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from reelhouse.services.errors import ServiceError
from reelhouse.domain.videos import InvalidTransition

log = logging.getLogger("reelhouse.api")


def problem(status: int, code: str, title: str, **extra):
    body = {"status": status, "code": code, "title": title, **{k: v for k, v in extra.items() if v is not None}}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        response = jsonify(exc.to_problem())
        response.status_code = exc.status
        response.mimetype = "application/problem+json"
        if exc.status == 429 and "retry_after_s" in exc.extra:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.extra["retry_after_s"])))
        return response

    @app.errorhandler(InvalidTransition)
    def _transition(exc: InvalidTransition):
        return problem(409, "invalid_transition", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return problem(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem(500, "internal_error", "the server hit an unexpected error; it has been logged")
