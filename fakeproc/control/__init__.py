"""The control layer: what the control API and the admin panel change, as validated bodies.

`schemas` holds the pydantic bodies both surfaces validate with (and the OpenAPI document is
built from); `rules` and `connectors` turn them into stored rows, keeping card numbers, CVVs
and passwords only as keyed fingerprints. Modules here import the processor and the store,
never the web or Twilio's side.
"""
