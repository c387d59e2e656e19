"""The admin panel: a blueprint of server-rendered pages over the same domain functions as the
control API. Login when a password is configured; every form carries a CSRF token."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from ...control.schemas import ValidationError, describe
from ...errors import DomainError
from ...processor.fingerprints import same
from ..errors import refuse_unstorable
from .forms import ConfirmForm, LoginForm

bp = Blueprint("admin", __name__, url_prefix="/admin")

_OPEN_ENDPOINTS = frozenset({"admin.login"})


def admin_secret() -> str | None:
    """What logs in: the admin password, else the admin token, else nothing (open panel)."""
    config = current_app.config
    return config.get("ADMIN_PASSWORD") or config.get("ADMIN_TOKEN") or None


@bp.before_request
def require_login() -> Response | None:
    if admin_secret() is None or request.endpoint in _OPEN_ENDPOINTS or session.get("admin"):
        return None
    if request.method == "GET" and request.headers.get("HX-Request") != "true":
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return Response("log in first", status=401, mimetype="text/plain")


# What no store can hold (a NUL, an id past the column) is a 404 or 400 page, as in the API.
bp.before_request(refuse_unstorable)


@bp.context_processor
def panel_context() -> dict:
    # Only drawn, never filled from the request: an error page must render whatever the
    # request's body was, even one that could not be read.
    return {"login_required": admin_secret() is not None,
            "logout_form": ConfirmForm(formdata=None)}


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = LoginForm()
    if form.validate_on_submit():
        if same(form.password.data, admin_secret()):
            session.clear()
            session["admin"] = True
            return redirect(_local_target(request.args.get("next")))
        flash("That password is not the admin password.", "error")
    return render_template("admin/login.html", form=form,
                           open_panel=admin_secret() is None)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> str | Response:
    form = ConfirmForm()
    if form.validate_on_submit():
        session.clear()
        flash("Logged out.", "info")
        return redirect(url_for("admin.login"))
    return render_template("admin/logout.html", form=form)


@bp.errorhandler(DomainError)
def domain_error(error: DomainError) -> tuple[str, int]:
    return render_template("admin/error.html", message=error.message), error.status


@bp.errorhandler(ValidationError)
def validation_error(error: ValidationError) -> tuple[str, int]:
    return render_template("admin/error.html", message=describe(error)), 400


@bp.errorhandler(CSRFError)
def csrf_error(error: CSRFError) -> tuple[str, int]:
    message = f"The form was refused: {error.description} Reload the page and try again."
    return render_template("admin/error.html", message=message), 400


def _local_target(target: str | None) -> str:
    """Only a path inside the panel: never a redirect to another site."""
    if target and target.startswith("/admin") and "//" not in target and "\\" not in target:
        return target
    return url_for("admin.dashboard")


from . import manage, pages, times  # noqa: E402,F401  (views and filters register on bp)
