"""The admin panel (a first page; the full panel is built on this blueprint)."""

from __future__ import annotations

from flask import Blueprint, render_template

from .. import connectors, ledger

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
def dashboard() -> str:
    return render_template("admin/dashboard.html", counts=ledger.counts(),
                           connectors=connectors.all_connectors(),
                           latest=ledger.transactions(ledger.Filters(), 20).items)
