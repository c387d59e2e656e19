"""A bare Flask app with one trivial JSON POST endpoint, served exactly like `fakeproc serve`.

The baseline for load_charge.py: the same gunicorn options (fakeproc.server.gunicorn_options)
and the same gunicorn application class (fakeproc.server.Server), only the WSGI app differs, so
the gap between the two is what fakeproc's own code path (parsing, SQLAlchemy, SQLite) costs.

    python benchmarks/bare_app.py --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import secrets

from flask import Flask, request

from fakeproc.server import Server, default_workers, gunicorn_options

app = Flask(__name__)


@app.post("/")
def charge():
    body = request.get_json(force=True)
    return {"charge_id": "ch_" + secrets.token_hex(16), "error_code": None,
            "error_message": None, "transaction_id": body.get("transaction_id")}


class BareServer(Server):
    """fakeproc's gunicorn application (same load_config), serving the bare app instead."""

    def load(self):
        return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args()
    options = gunicorn_options(args.host, args.port, args.workers or default_workers(), None,
                               None, args.access_log)
    BareServer(options, {}).run()


if __name__ == "__main__":
    main()
