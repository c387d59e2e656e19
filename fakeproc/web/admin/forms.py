"""The admin panel's forms (Flask-WTF: each carries a CSRF token) and how each becomes the
same validated body the control API takes, so the panel and the API share one set of rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DecimalField,
    FloatField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, NumberRange, Optional

from ...control.schemas import ConnectorCreate, ConnectorUpdate, RuleCreate
from ...processor.cards import BRANDS
from ...processor.faults import MALFORMED_VARIANTS
from ...processor.outcomes import MESSAGES

ACTIONS = ("approve", "decline", "delay", "hang", "drop", "http_error", "malformed")
DECLINE_CODES = tuple(code for code in MESSAGES if code != "duplicate_transaction")
ANY = "any"


def choices(values: tuple[str, ...] | list[str], blank: str | None = None) -> list[SelectChoice]:
    """Options named as their values, after a blank one labelled `blank` if given."""
    return labelled(*([("", blank)] if blank else []), *((value, value) for value in values))


def labelled(*pairs: tuple[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class LoginForm(FlaskForm):
    password = PasswordField("Password", validators=[InputRequired()])


class ConfirmForm(FlaskForm):
    """A button that changes something (enable, delete, log out): only its CSRF token."""


class QuickArmForm(FlaskForm):
    """"The next payment": one action for every attempt (or only the first attempt) of the
    next `count` payments, on one connector or all."""

    action = SelectField("Action", choices=labelled(
        ("decline", "Decline"), ("approve", "Approve"), ("delay", "Delay"),
        ("hang", "Hang"), ("drop", "Drop the connection"), ("http_error", "HTTP error")),
        default="decline")
    error_code = SelectField("Error code", choices=choices(DECLINE_CODES),
                             default="insufficient_funds")
    seconds = FloatField("Seconds", default=12.0,
                         validators=[Optional(), NumberRange(min=0.001, max=3600)])
    status = IntegerField("HTTP status", default=500,
                          validators=[Optional(), NumberRange(min=400, max=599)])
    charge = BooleanField("Charge anyway (an orphan)")
    attempts = RadioField("Which attempts", choices=labelled(
        ("every", "Every attempt"), ("first", "First attempt only")), default="every")
    count = IntegerField("For the next", default=1,
                         validators=[InputRequired(), NumberRange(min=1, max=10_000)])
    connector = SelectField("Connector", choices=choices([], ANY), default="")

    @property
    def first_only(self) -> bool:
        return self.attempts.data == "first"

    def to_rule(self) -> RuleCreate:
        kind = self.action.data
        action: dict[str, Any] = {"type": kind}
        if kind == "decline":
            action["error_code"] = self.error_code.data
        if kind in ("delay", "hang") and self.seconds.data:
            action["seconds"] = self.seconds.data
        if kind == "http_error":
            action["status"] = self.status.data or 500
        if kind in ("hang", "drop"):
            action["charge"] = bool(self.charge.data)
        count = self.count.data
        match: dict[str, Any] = {"connector": self.connector.data} if self.connector.data else {}
        if self.first_only and kind not in OUTCOME_ACTIONS:
            match["attempt"] = 1
        which = "the first attempt of " if "attempt" in match else ""
        note = f"quick-arm: {kind} {which}the next {count} payment{'s' if count != 1 else ''}" \
            + (f" on {self.connector.data}" if self.connector.data else "")
        return RuleCreate.model_validate({"match": match, "action": action,
                                          "remaining": count, "note": note})


OUTCOME_ACTIONS = ("approve", "decline")


class RuleForm(FlaskForm):
    """Every field of a rule: match, action, lifetime. Blank means "not part of the rule"."""

    # match
    connector = SelectField("Connector", choices=choices([], ANY), default="")
    method = SelectField("Method", choices=choices(("charge", "tokenize"), ANY), default="")
    payment_method = SelectField("Payment method",
                                 choices=choices(("credit-card", "ach-debit"), ANY), default="")
    card_brand = SelectField("Card brand", choices=choices(BRANDS, ANY), default="")
    card_number = StringField("Card number", validators=[Optional()])
    last4 = StringField("Last 4", validators=[Optional()])
    amount = DecimalField("Amount", places=None, validators=[Optional()])
    amount_min = DecimalField("Amount from", places=None, validators=[Optional()])
    amount_max = DecimalField("Amount to", places=None, validators=[Optional()])
    currency = StringField("Currency", validators=[Optional()])
    postal_code = StringField("Postal code", validators=[Optional()])
    cvv = StringField("CVV", validators=[Optional()])
    description_contains = StringField("Description contains", validators=[Optional()])
    transaction_id = StringField("Transaction id", validators=[Optional()])
    attempt = IntegerField("Attempt number", validators=[Optional()])
    match_parameters = TextAreaField("Parameters (key=value, one a line)",
                                     validators=[Optional()])
    # action
    action = SelectField("Action", choices=choices(ACTIONS), default="decline")
    error_code = StringField("Error code", default="insufficient_funds",
                             validators=[Optional()])
    error_message = StringField("Error message", validators=[Optional()])
    seconds = FloatField("Seconds", validators=[Optional()])
    charge = SelectField("Charge", choices=labelled(("", "the action's default"), ("yes", "yes"),
                                                    ("no", "no")), default="")
    status = IntegerField("HTTP status", validators=[Optional()])
    body = TextAreaField("Body", validators=[Optional()])
    variant = SelectField("Malformed variant", choices=choices(MALFORMED_VARIANTS),
                          default="not_json")
    outcome = SelectField("Then", choices=labelled(("", "the usual outcome"),
                                                   ("approve", "approve"), ("decline", "decline")),
                          default="")
    outcome_error_code = StringField("Then decline with", validators=[Optional()])
    action_parameters = TextAreaField("Parameters returned (key=value, one a line)",
                                      validators=[Optional()])
    # lifetime
    remaining = IntegerField("Remaining (blank: forever)", validators=[Optional()])
    probability = FloatField("Probability", default=1.0, validators=[Optional()])
    enabled = BooleanField("Enabled", default=True)
    priority = IntegerField("Priority (lower first)", default=100, validators=[Optional()])
    note = StringField("Note", validators=[Optional()])

    _MATCH_FIELDS = ("connector", "method", "payment_method", "card_brand", "card_number",
                     "last4", "amount", "amount_min", "amount_max", "currency", "postal_code",
                     "cvv", "description_contains", "transaction_id", "attempt")

    def to_rule(self) -> RuleCreate:
        """The rule as the control API would take it; raises pydantic's ValidationError."""
        match = {name: _plain(getattr(self, name).data) for name in self._MATCH_FIELDS
                 if getattr(self, name).data not in (None, "")}
        if self.match_parameters.data:
            match["parameters"] = parse_pairs(self.match_parameters.data)
        body: dict[str, Any] = {"match": match, "action": self._action(),
                                "enabled": bool(self.enabled.data)}
        for name in ("remaining", "probability", "priority", "note"):
            value = getattr(self, name).data
            if value not in (None, ""):
                body[name] = value
        return RuleCreate.model_validate(body)

    def _action(self) -> dict[str, Any]:
        kind = self.action.data
        action: dict[str, Any] = {"type": kind}
        wanted = {"decline": ("error_code", "error_message"), "delay": ("seconds",),
                  "hang": ("seconds",), "http_error": ("status", "body"),
                  "malformed": ("variant", "status")}.get(kind, ())
        for name in wanted:
            value = getattr(self, name).data
            if value not in (None, ""):
                action[name] = value
        if self.charge.data and kind in ("hang", "drop", "http_error", "malformed"):
            action["charge"] = self.charge.data == "yes"
        if self.outcome.data and kind not in ("approve", "decline"):
            outcome: dict[str, Any] = {"type": self.outcome.data}
            if self.outcome.data == "decline":
                outcome["error_code"] = self.outcome_error_code.data or ""
            action["outcome"] = outcome
        if self.action_parameters.data:
            action["parameters"] = parse_pairs(self.action_parameters.data)
        return action


class ConnectorForm(FlaskForm):
    unique_name = StringField("Unique name", validators=[Optional()])
    username = StringField("Username", validators=[Optional()])
    password = PasswordField("Password", validators=[Optional()])
    clear_password = BooleanField("Remove the password (accept any credentials)")
    mode = SelectField("Mode", choices=choices(("test", "open")), default="test")
    idempotency = SelectField("Idempotency",
                              choices=choices(("replay", "duplicate_error", "reprocess")),
                              default="replay")
    magic_values = BooleanField("Magic values", default=True)
    timeout_seconds = FloatField("Timeout (seconds)", default=10.0,
                                 validators=[InputRequired(), NumberRange(min=0.001, max=3600)])

    def _settings(self) -> dict[str, Any]:
        return {"username": self.username.data or None, "mode": self.mode.data,
                "idempotency": self.idempotency.data,
                "magic_values": bool(self.magic_values.data),
                "timeout_seconds": float(self.timeout_seconds.data)}

    def to_create(self) -> ConnectorCreate:
        return ConnectorCreate.model_validate({"unique_name": self.unique_name.data or "",
                                               "password": self.password.data or None,
                                               **self._settings()})

    def to_update(self) -> ConnectorUpdate:
        """Settings as shown; the password changes only when typed or explicitly removed."""
        fields = self._settings()
        if self.clear_password.data:
            fields["password"] = ""
        elif self.password.data:
            fields["password"] = self.password.data
        return ConnectorUpdate.model_validate(fields)


class ResetForm(FlaskForm):
    confirm = StringField('Type "reset" to confirm', validators=[InputRequired()])
    rules = BooleanField("Also delete every rule")


def parse_pairs(text: str) -> dict[str, str]:
    """`key=value` lines as a dict; a line without `=` is a key with an empty value."""
    pairs = {}
    for line in text.splitlines():
        if line.strip():
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
