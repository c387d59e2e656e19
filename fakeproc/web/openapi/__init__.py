"""The OpenAPI 3.0.3 description of the processor endpoint and the control API, served at
/api/openapi.json. Control API bodies are generated from the pydantic models in
`control.schemas`; the rest mirrors `processor.wire`, `store.ledger` and `web.errors`, and
tests/test_openapi.py holds it to them."""

from __future__ import annotations

from ...config import package_version
from ...control.schemas import (
    ConnectorCreate,
    ConnectorUpdate,
    ResetRequest,
    RuleCreate,
    RuleUpdate,
)
from .control_doc import amounts_as_taken, api_paths, ledger_schemas, parameters, rule_schemas
from .processor_doc import processor_paths, processor_schemas
from .schema_tools import Schema, model_schema


def build_spec() -> Schema:
    models: Schema = {}
    for model in (ConnectorCreate, ConnectorUpdate, ResetRequest, RuleCreate, RuleUpdate):
        models[model.__name__] = model_schema(model, models)
    amounts_as_taken(models["RuleMatch"])
    return {
        "openapi": "3.0.3",
        "info": {"title": "fakeproc", "version": package_version(), "description":
                 "A stateful fake payment processor for Twilio's Generic Pay Connector: the "
                 "processor endpoint, and the JSON control API under /api/."},
        "paths": processor_paths() | api_paths(),
        "components": {
            "schemas": processor_schemas() | ledger_schemas(models) | models
            | rule_schemas(models),
            "parameters": parameters(models),
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic", "description": "The "
                              "connector's username and password, if it has a password."},
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The admin "
                               "token, if the server has one (FAKEPROC_ADMIN_TOKEN)."}},
        },
    }
