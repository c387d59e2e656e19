"""The pages that change things: rules, connectors, settings (reset, export)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from flask import flash, redirect, render_template, request, stream_with_context, url_for
from werkzeug.wrappers import Response

from ...control import connectors, rules
from ...control.schemas import RuleUpdate, ValidationError, describe
from ...processor import magic_values
from ...store import connector_rows, ledger, rule_rows
from ...store.connector_rows import ConnectorSettings
from ...store.models import db
from ..runtime import runtime
from . import bp
from .forms import ConfirmForm, ConnectorForm, ResetForm, RuleForm, choices

# Presets fill the rule form for the common cases; every field stays editable.
PRESETS: dict[str, dict[str, Any]] = {
    "decline-next": {"label": "Decline the next charge", "action": "decline",
                     "method": "charge", "error_code": "insufficient_funds", "remaining": 1},
    "delay-next": {"label": "Delay the next payment's first attempt 12 s (Twilio's retry "
                          "gets the answer)", "action": "delay", "seconds": 12.0, "attempt": 1,
                   "remaining": 1},
    "hang-orphan": {"label": "Hang every attempt of the next payment, charge anyway (an "
                             "orphan)", "action": "hang", "charge": "yes", "remaining": 1},
    "drop-next": {"label": "Drop every connection of the next payment", "action": "drop",
                  "remaining": 1},
    "http-503": {"label": "HTTP 503 for the next payment", "action": "http_error",
                 "status": 503, "remaining": 1},
    "malformed": {"label": "A body that is not JSON, for the next payment",
                  "action": "malformed", "variant": "not_json", "remaining": 1},
    "decline-brand": {"label": "Decline every Amex card", "action": "decline",
                      "card_brand": "amex", "error_code": "card_declined"},
}
EXPORT_FIELDS = ("transaction_id", "connector", "method", "payment_method", "status",
                 "charge_id", "token_id", "error_code", "error_message", "amount", "currency",
                 "card_brand", "last4", "attempts", "retried", "orphaned", "created_at",
                 "settled_at", "description")


@bp.route("/rules", methods=["GET", "POST"])
def rules_page() -> str | tuple[str, int] | Response:
    form = _rule_form()
    preset = PRESETS.get(request.args.get("preset", ""))
    if request.method == "GET" and preset:
        for name, value in preset.items():
            if name != "label":
                getattr(form, name).data = value
    if form.validate_on_submit():
        try:
            rule = rules.create(form.to_rule(), runtime().fingerprints)
        except ValidationError as error:
            flash(f"The rule was not saved: {describe(error)}", "error")
        else:
            flash(f"Rule {rule['id']} saved.", "success")
            return redirect(url_for("admin.rules_page"))
    status = 400 if form.errors or request.method == "POST" else 200
    return render_template("admin/rules.html", form=form, presets=PRESETS,
                           rules=rule_rows.page(500).items, button=ConfirmForm()), status


@bp.post("/rules/<int:rule_id>/toggle")
def toggle_rule(rule_id: int) -> Response:
    enabled = not rule_rows.get(rule_id)["enabled"]
    rules.update(rule_id, RuleUpdate(enabled=enabled), runtime().fingerprints)
    flash(f"Rule {rule_id} {'enabled' if enabled else 'disabled'}.", "success")
    return redirect(url_for("admin.rules_page"))


@bp.post("/rules/<int:rule_id>/delete")
def delete_rule(rule_id: int) -> Response:
    rule_rows.remove(rule_id)
    flash(f"Rule {rule_id} deleted.", "success")
    return redirect(request.form.get("back") == "dashboard"
                    and url_for("admin.dashboard") or url_for("admin.rules_page"))


@bp.route("/connectors", methods=["GET", "POST"])
def connectors_page() -> str | tuple[str, int] | Response:
    form = ConnectorForm()
    saved = _save_connector(form, lambda: connectors.create(form.to_create(),
                                                            runtime().fingerprints), "created")
    if saved is not None:
        return saved
    return render_template("admin/connectors.html", form=form,
                           connectors=connector_rows.all_connectors(), button=ConfirmForm(),
                           scale=runtime().clock.scale), 400 if request.method == "POST" else 200


@bp.route("/connectors/<unique_name>", methods=["GET", "POST"])
def connector_page(unique_name: str) -> str | tuple[str, int] | Response:
    current = connector_rows.get(unique_name)
    form = ConnectorForm(obj=current if request.method == "GET" else None)
    saved = _save_connector(form, lambda: connectors.update(unique_name, form.to_update(),
                                                            runtime().fingerprints), "saved")
    if saved is not None:
        return saved
    return render_template("admin/connector.html", form=form, connector=current,
                           button=ConfirmForm()), 400 if request.method == "POST" else 200


def _save_connector(form: ConnectorForm, save: Callable[[], ConnectorSettings],
                    done: str) -> Response | None:
    """A posted connector form, saved: the redirect to the list, or None to show the form
    again (not posted, invalid, or refused with a flashed reason)."""
    if not form.validate_on_submit():
        return None
    try:
        saved = save()
    except ValidationError as error:
        flash(f"The connector was not saved: {describe(error)}", "error")
        return None
    flash(f"Connector {saved.unique_name} {done}.", "success")
    return redirect(url_for("admin.connectors_page"))


@bp.post("/connectors/<unique_name>/delete")
def delete_connector(unique_name: str) -> Response:
    connector_rows.delete(unique_name)
    flash(f"Connector {unique_name} deleted.", "success")
    return redirect(url_for("admin.connectors_page"))


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> str | tuple[str, int] | Response:
    form = ResetForm()
    if form.validate_on_submit():
        if form.confirm.data.strip().lower() != "reset":
            flash('Nothing was deleted: type "reset" to confirm.', "error")
        else:
            deleted = ledger.reset()
            if form.rules.data:
                deleted["rules"] = rule_rows.clear()
                db.session.commit()
            flash("Deleted " + ", ".join(f"{n} {what}" for what, n in deleted.items()) + ".",
                  "success")
            return redirect(url_for("admin.settings"))
    return render_template("admin/settings.html", form=form, magic_rows=magic_values.REFERENCE,
                           scale=runtime().clock.scale,
                           database=_database_label()), 400 if request.method == "POST" else 200


@bp.get("/settings/export.<any(csv, json):kind>")
def export(kind: str) -> Response:
    """Every transaction, newest first, streamed page by page."""
    items = ledger.all_transactions(ledger.Filters())
    if kind == "json":
        body, mimetype = _json_lines(items), "application/json"
    else:
        body, mimetype = _csv_lines(items), "text/csv"
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=fakeproc-transactions.{kind}"
    return response


def _json_lines(items: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for index, item in enumerate(items):
        yield ("," if index else "") + "\n" + json.dumps(item)
    yield "\n]\n"


def _csv_lines(items: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, EXPORT_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for item in items:
        writer.writerow({key: _inert(value) for key, value in item.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _inert(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula (descriptions come from callers)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _rule_form() -> RuleForm:
    form = RuleForm()
    names = [connector.unique_name for connector in connector_rows.all_connectors()]
    form.connector.choices = choices(names, "any")
    return form


def _database_label() -> str:
    url = db.engine.url
    return url.render_as_string(hide_password=True) if url else "?"
