"""`fakeproc.connector`: the connector emulator's public name, kept for the code that imports
it from here (`from fakeproc.connector import Card, Connector`); it lives in `fakeproc.twilio`."""

from .twilio import (
                     Attempt,
                     BankAccount,
                     Card,
                     Connector,
                     Payment,
                     masked,
                     new_transaction_id,
                     served_time_scale,
)

__all__ = ["Attempt", "BankAccount", "Card", "Connector", "Payment", "masked",
           "new_transaction_id", "served_time_scale"]
