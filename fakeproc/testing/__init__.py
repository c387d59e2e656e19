"""fakeproc in a test suite: the pytest plugin (`pytest_plugin`, registered under `pytest11`),
the controller a test arms faults and reads transactions with (`controller`), the live server
on a thread of the test process (`live_server`) and realistic request bodies (`payloads`).
The controller goes through the control API, as a test's own HTTP client would, so a rule
armed from a test is validated exactly as one sent over HTTP. Modules here may import the app
factory and every layer below it, never the command line.
"""

from .controller import Controller, FakeprocError, FakeprocServerError, ServerErrors, describe

__all__ = ["Controller", "FakeprocError", "FakeprocServerError", "ServerErrors", "describe"]
