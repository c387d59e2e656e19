"""The fakeproc app, for `flask --app app run` and any WSGI server."""

from fakeproc import create_app

app = create_app()
