"""The processor: the Generic Pay Connector protocol and every decision fakeproc makes on it.

The wire format (`wire`), cards and bank checks (`cards`, `outcomes`), faults and where they
come from (`faults`, `rule_matching`, `magic_values`), what goes on the wire (`delivery`), the
roles an attempt takes and the engine that runs them (`engine` and the role modules), in-flight
waits (`in_flight`), ids, the time scale (`clock`), keyed fingerprints (`fingerprints`) and the
per-app services that hold them (`runtime`). Plain Python, no Flask: modules here import each
other, the store and fakeproc's shared leaves, never the control layer, the web or Twilio's
side. Twilio's side uses only what this package exports below.
"""

from .cards import (
    BRANDS,
    TEST_BANK_ACCOUNTS,
    TEST_CARDS,
    aba_routing_valid,
    card_brand,
    card_types,
    luhn_valid,
    mask,
    redact_numbers,
    redact_pans,
)

__all__ = ["BRANDS", "TEST_BANK_ACCOUNTS", "TEST_CARDS", "aba_routing_valid", "card_brand",
           "card_types", "luhn_valid", "mask", "redact_numbers", "redact_pans"]
