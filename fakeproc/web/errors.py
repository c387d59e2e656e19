"""One error shape per surface: processor JSON, control API JSON, plain pages elsewhere."""

from __future__ import annotations

import json
import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.wrappers import Response

from ..control.schemas import MAX_INTEGER, ValidationError, describe
from ..errors import BadRequest, DomainError, NotFound
from ..processor import redact_numbers
from ..processor.wire import InvalidRequest, answer

log = logging.getLogger("fakeproc")

_NAMES = {"rule_id": "rule", "unique_name": "connector", "transaction_id": "transaction"}
_PROCESSOR_CODES = {400: "invalid_request", 401: "unauthorized", 404: "not_found",
                    405: "method_not_allowed", 413: "request_too_large",
                    503: "service_unavailable"}


def processor_error(status: int, code: str, message: str, method: str | None) -> Response:
    response = jsonify(answer(method or "charge", None, code, message))
    response.status_code = status
    return response


def api_error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _is_processor_path(path: str) -> bool:
    return path in ("/", "/charge", "/tokenize") or path.startswith("/connectors/")


def _path_method(path: str) -> str | None:
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return tail if tail in ("charge", "tokenize") else None


def _out_of_reach(error: BaseException) -> str | None:
    """What to say when `error` means the database cannot be used just now (the server gone
    or refusing connections, a lock or a free connection not had in time), else None."""
    from sqlalchemy.exc import DisconnectionError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if not isinstance(error, (OperationalError, DisconnectionError, PoolTimeout)):
        return None
    cause = str(getattr(error, "orig", None) or error).strip().splitlines()
    return cause[0] if cause else type(error).__name__


def _unavailable(error: BaseException, method: str, path: str) -> str:
    reason = _out_of_reach(error)
    log.error("database out of reach on %s %s: %s", method, redact_numbers(path), reason)
    return "fakeproc's database is out of reach just now; try again"


def processor_failure(error: Exception, method: str, path: str) -> Response:
    """The processor endpoint's JSON answer to what went wrong with a request to `path`."""
    if isinstance(error, InvalidRequest):
        return processor_error(400, "invalid_request", error.message, error.method)
    if _out_of_reach(error) is not None:
        response = processor_error(503, "service_unavailable",
                                   _unavailable(error, method, path), _path_method(path))
        response.headers["Retry-After"] = "1"
        return response
    if not isinstance(error, HTTPException):
        log.exception("unhandled error on %s %s", method, redact_numbers(path), exc_info=error)
        error = InternalServerError("fakeproc hit an internal error; see its log")
    status = error.code or 500
    response = processor_error(status, _PROCESSOR_CODES.get(status, "http_error"),
                               error.description or error.name, _path_method(path))
    for name in ("Allow", "WWW-Authenticate"):
        if name in error.get_response().headers:
            response.headers[name] = error.get_response().headers[name]
    return response


def server_refusal(path: str | None, status: int, message: str) -> bytes | None:
    """The JSON body for a request the server refused before fakeproc saw it (a bad request
    line or header, a URL or headers too long): the processor's shape, or the control API's
    for `/api/`; None for the panel, whose refusals stay plain pages. A request line too
    broken to name a path gets the processor's shape: that is what Twilio talks to."""
    if path is not None and not (_is_processor_path(path) or path.startswith("/api/")):
        return None
    if path is not None and path.startswith("/api/"):
        body = {"error": message}
    else:
        body = answer(_path_method(path or "/") or "charge", None,
                      _PROCESSOR_CODES.get(status, "http_error"), message)
    return json.dumps(body).encode() + b"\n"


def register(app: Flask) -> None:
    @app.errorhandler(InvalidRequest)
    def invalid_request(error: InvalidRequest) -> Response:
        return processor_failure(error, request.method, request.path)

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Response:
        return api_error(error.status, error.message)

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError) -> Response:
        return api_error(400, describe(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if _is_processor_path(request.path):
            return processor_failure(error, request.method, request.path)
        if not request.path.startswith("/api/"):
            return error.get_response()
        response = api_error(error.code or 500, error.description or error.name)
        for name in ("Allow", "WWW-Authenticate"):
            if name in error.get_response().headers:
                response.headers[name] = error.get_response().headers[name]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if _out_of_reach(error) is not None:
            if _is_processor_path(request.path):
                return processor_failure(error, request.method, request.path)
            response = http_error(ServiceUnavailable(
                _unavailable(error, request.method, request.path)))
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error on %s %s", request.method, redact_numbers(request.path))
        return http_error(InternalServerError("fakeproc hit an internal error; see its log"))


def refuse_unstorable() -> None:
    """What no store can hold is refused before it reaches a WHERE: a NUL character
    (PostgreSQL text cannot hold one) or a rule id past the id column. Nothing stored has such
    a name, so a path naming one names nothing (404); a query parameter is a 400 naming it."""
    for name, value in (request.view_args or {}).items():
        if (isinstance(value, str) and "\x00" in value) \
                or (isinstance(value, int) and value > MAX_INTEGER):
            raise NotFound(f"no {_NAMES.get(name, name)} {value!r}")
    for name, value in request.args.items(multi=True):
        if "\x00" in value:
            raise BadRequest(f"{name} must not hold a NUL character")
