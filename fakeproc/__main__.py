"""`python -m fakeproc` runs the fakeproc command."""

from .cli import main

main()
