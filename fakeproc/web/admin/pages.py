"""The pages QA engineers read: the dashboard (live), transactions, one transaction's attempt
timeline, and retries."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from markupsafe import escape
from werkzeug.wrappers import Response

from ...control import rules
from ...control.schemas import ValidationError, describe
from ...errors import BadRequest, NotFound
from ...store import connector_rows, ledger, rule_rows
from ..runtime import runtime
from . import bp
from .attempt_marks import LEGEND, timeline
from .forms import ConfirmForm, QuickArmForm, choices
from .twilio_effect import Armed, effect

PAGE_SIZE = 50
LATEST = 15
SPENT_SHOWN = 3  # rules used up or disabled, shown greyed below the armed ones


@bp.app_template_filter("pretty")
def pretty_filter(value: Any) -> str:
    """JSON as it was sent, indented; autoescaping then shows it as text."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.get("/")
def dashboard() -> str:
    form = _quick_arm_form()
    return render_template("admin/dashboard.html", form=form, **_live_data(),
                           **_rules_data(), refresh=_refresh_seconds(), effect=_effect(form))


@bp.get("/quick-arm/effect")
def quick_arm_effect() -> str:
    """What Twilio will do with the quick-arm form as it stands (htmx asks on every change)."""
    form = _quick_arm_form(request.args)
    form.validate()  # fills what parses; the sentence uses defaults for the rest
    return str(escape(_effect(form)))


@bp.get("/live")
def live() -> str:
    """The dashboard's changing part, fetched every few seconds by htmx."""
    return render_template("admin/_live.html", **_live_data(), refresh=_refresh_seconds(),
                           counts_out_of_band=True)


@bp.get("/live/rules")
def live_rules() -> str:
    """The dashboard's rules, fetched every few seconds by htmx on their own: the quick-arm form
    beside them, which the user may be typing in, is never sent again."""
    return render_template("admin/_armed_rules.html", **_rules_data(),
                           refresh=_refresh_seconds())


@bp.post("/quick-arm")
def quick_arm() -> str | Response:
    form = _quick_arm_form()
    if form.validate_on_submit():
        try:
            rule = rules.create(form.to_rule(), runtime().fingerprints)
        except ValidationError as error:
            flash(describe(error), "error")
        else:
            flash(f"Armed rule {rule['id']}: {rule['note']}. {_effect(form)}", "success")
            return redirect(url_for("admin.dashboard"))
    for field, errors in form.errors.items():
        flash(f"{field}: {'; '.join(errors)}", "error")
    return render_template("admin/dashboard.html", form=form, **_live_data(),
                           **_rules_data(), refresh=_refresh_seconds(), effect=_effect(form)), 400


@bp.get("/transactions")
def transactions() -> str:
    filters = _filters()
    page = ledger.transactions(filters, PAGE_SIZE, request.args.get("cursor") or None)
    return render_template("admin/transactions.html", page=page, filters=filters,
                           connector_names=_connector_names(), statuses=ledger.STATUSES,
                           cursor=request.args.get("cursor"))


@bp.get("/transactions/<text:transaction_id>")
def transaction(transaction_id: str) -> str:
    """One transaction and its attempts; while one is in flight the page follows it live (htmx
    fetches the fragment again until every attempt has ended)."""
    detail = ledger.transaction_detail(transaction_id, request.args.get("connector") or None)
    budget = _budget_seconds(detail["connector"])
    rows = timeline(detail["attempts"], budget, datetime.now(timezone.utc), detail["method"])
    page = "admin/_transaction.html" if request.headers.get("HX-Request") else \
        "admin/transaction.html"
    return render_template(page, t=detail, budget=budget, timeline=rows, legend=LEGEND,
                           live=any(row["mark"].key == "in_flight" for row in rows),
                           refresh=_refresh_seconds())


@bp.get("/retries")
def retries() -> str:
    page = ledger.retries(PAGE_SIZE, request.args.get("cursor") or None)
    return render_template("admin/retries.html", page=page, cursor=request.args.get("cursor"))


def _live_data() -> dict[str, Any]:
    latest = ledger.transactions(ledger.Filters(), LATEST).items
    return {"counts": ledger.counts(), "latest": latest}


def _rules_data() -> dict[str, Any]:
    """The armed rules, newest first, then the newest few that are used up or disabled."""
    newest = rule_rows.page(100).items
    return {"armed": [rule for rule in newest if rule["live"]],
            "spent": [rule for rule in newest if not rule["live"]][:SPENT_SHOWN],
            "button": ConfirmForm()}


def _quick_arm_form(formdata: Any = None) -> QuickArmForm:
    if formdata is None:
        form = QuickArmForm()
    else:  # a read-only preview: nothing is changed, so no CSRF token is asked for
        form = QuickArmForm(formdata=formdata, meta={"csrf": False})
    form.connector.choices = choices(_connector_names(), "any connector")
    return form


def _effect(form: QuickArmForm) -> str:
    """The quick-arm choice in plain words: what the payment meets, what Twilio then does."""
    try:
        timeout = connector_rows.get(form.connector.data or connector_rows.DEFAULT).timeout_seconds
    except NotFound:
        timeout = 10.0
    seconds = form.seconds.data if form.seconds.data is not None else form.seconds.default
    return effect(Armed(action=form.action.data or "", first_only=form.first_only,
                        count=form.count.data if isinstance(form.count.data, int)
                        and form.count.data > 0 else 1, timeout=timeout, seconds=seconds,
                        status=form.status.data, charge=bool(form.charge.data),
                        error_code=form.error_code.data))


def _connector_names() -> list[str]:
    return [c.unique_name for c in connector_rows.all_connectors()]


def _filters() -> ledger.Filters:
    args = request.args
    try:
        return ledger.Filters(status=args.get("status") or None,
                              method=args.get("method") or None,
                              connector=args.get("connector") or None,
                              retried=args.get("retried") in ("1", "on", "true"),
                              orphaned=args.get("orphaned") in ("1", "on", "true"),
                              q=args.get("q") or None)
    except BadRequest as error:
        flash(error.message, "error")
        return ledger.Filters()


def _budget_seconds(connector: str) -> float:
    """Twilio's wait for this connector's answers, in real seconds under the time scale."""
    try:
        timeout = connector_rows.get(connector).timeout_seconds
    except NotFound:  # deleted since
        timeout = 10.0
    return runtime().clock.scaled(timeout)


def _refresh_seconds() -> float:
    return float(current_app.config["ADMIN_REFRESH_SECONDS"])


@bp.get("/transactions/")
def transactions_slash() -> Response:
    return redirect(url_for("admin.transactions"))
