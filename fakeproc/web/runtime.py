"""The current app's services (`fakeproc.processor.runtime.Runtime`), for the views."""

from __future__ import annotations

from flask import current_app

from ..processor.runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["fakeproc"]
