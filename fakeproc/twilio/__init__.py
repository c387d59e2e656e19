"""Twilio's side, emulated: what Twilio does around a processor, so that teams can test without
a phone. The Generic Pay Connector's client (`gpc_client`: the request `<Pay>` sends, the
timeout, the retries) with the caller's card or account (`payment_details`), the fields the
`<Pay>` action URL then gets (`action_fields`), the server's clock (`server_clock`) and the
conformance check of any processor endpoint (`conformance`). It talks to a processor over HTTP
only, fakeproc or not. Modules here import each other, fakeproc's shared leaves and what
`fakeproc.processor` exports (card rules and masks), never a module inside the processor, nor
the store, the control layer or the web.
"""

from .gpc_client import Attempt, Connector, Payment
from .payment_details import BankAccount, Card, masked, new_transaction_id
from .server_clock import served_time_scale

__all__ = ["Attempt", "BankAccount", "Card", "Connector", "Payment", "masked",
           "new_transaction_id", "served_time_scale"]
