"""The JSON control API under /api/: health, transactions, retries, connectors, reset."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request
from werkzeug.wrappers import Response

from ..config import DEFAULT_TIMEOUT_SECONDS, package_version
from ..control import connectors, rules
from ..control.schemas import ConnectorCreate, ConnectorUpdate, ResetRequest, RuleCreate, RuleUpdate
from ..errors import BadRequest
from ..processor.fingerprints import same
from ..store import connector_rows, ledger, rule_rows
from ..store.models import db
from .errors import api_error, refuse_unstorable
from .openapi import build_spec
from .runtime import runtime

bp = Blueprint("api", __name__, url_prefix="/api")

_PUBLIC = frozenset({"api.health"})


@bp.before_request
def require_token() -> Response | None:
    token = runtime().admin_token
    if token is None or request.endpoint in _PUBLIC:
        return None
    auth = request.authorization
    given = auth.token if auth is not None and auth.type == "bearer" else None
    if not same(given, token):
        response = api_error(401, "this API needs Authorization: Bearer <admin token>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="fakeproc"'
        return response
    return None


bp.before_request(refuse_unstorable)


@bp.get("/health")
def health() -> dict[str, Any]:
    """Alive, and on what clock: Twilio's side reads the time scale to match its timeout."""
    scale = runtime().clock.scale
    return {"status": "ok", "version": package_version(), "time_scale": scale,
            "connector_timeout_seconds": DEFAULT_TIMEOUT_SECONDS * scale}


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return build_spec()


@bp.get("/transactions")
def transactions() -> dict[str, Any]:
    args = request.args
    filters = ledger.Filters(
        transaction_id=args.get("transaction_id"), connector=args.get("connector"),
        status=args.get("status"), method=args.get("method"),
        retried=_flag("retried"), orphaned=_flag("orphaned"), q=args.get("q"))
    return ledger.transactions(filters, _limit(), args.get("cursor")).to_json()


@bp.get("/transactions/<text:transaction_id>")
def transaction(transaction_id: str) -> dict[str, Any]:
    return ledger.transaction_detail(transaction_id, request.args.get("connector"))


@bp.get("/retries")
def retries() -> dict[str, Any]:
    return ledger.retries(_limit(), request.args.get("cursor")).to_json()


@bp.post("/reset")
def reset() -> dict[str, Any]:
    options = ResetRequest.model_validate(_json_body(required=False))
    deleted = ledger.reset()
    if options.rules:
        deleted["rules"] = rule_rows.clear()
        db.session.commit()
    return {"status": "ok", "deleted": deleted}


@bp.get("/rules")
def list_rules() -> dict[str, Any]:
    return rule_rows.page(_limit(), request.args.get("cursor")).to_json()


@bp.post("/rules")
def create_rule() -> tuple[dict[str, Any], int]:
    data = RuleCreate.model_validate(_json_body())
    return rules.create(data, runtime().fingerprints), 201


@bp.get("/rules/<int:rule_id>")
def get_rule(rule_id: int) -> dict[str, Any]:
    return rule_rows.get(rule_id)


@bp.patch("/rules/<int:rule_id>")
def update_rule(rule_id: int) -> dict[str, Any]:
    data = RuleUpdate.model_validate(_json_body())
    return rules.update(rule_id, data, runtime().fingerprints)


@bp.delete("/rules/<int:rule_id>")
def delete_rule(rule_id: int) -> tuple[str, int]:
    rule_rows.remove(rule_id)
    return "", 204


@bp.get("/connectors")
def list_connectors() -> dict[str, Any]:
    return connector_rows.page(_limit(), request.args.get("cursor")).to_json()


@bp.post("/connectors")
def create_connector() -> tuple[dict[str, Any], int]:
    data = ConnectorCreate.model_validate(_json_body())
    return connectors.create(data, runtime().fingerprints).to_json(), 201


@bp.get("/connectors/<unique_name>")
def get_connector(unique_name: str) -> dict[str, Any]:
    return connector_rows.get(unique_name).to_json()


@bp.patch("/connectors/<unique_name>")
def update_connector(unique_name: str) -> dict[str, Any]:
    data = ConnectorUpdate.model_validate(_json_body())
    return connectors.update(unique_name, data, runtime().fingerprints).to_json()


@bp.delete("/connectors/<unique_name>")
def delete_connector(unique_name: str) -> tuple[str, int]:
    connector_rows.delete(unique_name)
    return "", 204


def _json_body(required: bool = True) -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw:
        if required:
            raise BadRequest("a JSON object body is expected")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _limit() -> int:
    raw = request.args.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("limit must be a whole number")
    return int(raw)


def _flag(name: str) -> bool:
    raw = request.args.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false")
    return raw in ("true", "1")
