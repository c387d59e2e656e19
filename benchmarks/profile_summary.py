#!/usr/bin/env python3
"""Summarise py-spy collapsed stacks (`py-spy record --format raw`) of fakeproc workers.

    python benchmarks/profile_summary.py /tmp/fakeproc-bench-*/profile-*.txt [--top 25]

Prints where the samples go: by layer (fakeproc, SQLAlchemy, sqlite3, Flask/Werkzeug, gunicorn/
gevent, idle), inclusive time of the fakeproc functions on the charge path, the hottest leaves,
and what the main fakeproc functions spend their time calling.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")

LAYERS = (  # first match on the innermost frame wins
    ("idle: gevent hub waiting for I/O (py-spy --idle)", ("Hub.run",)),
    ("sqlite3 C calls (execute/commit/connect)", ("sqlite3", "<built-in")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("fakeproc", ("fakeproc/",)),
    ("Flask/Werkzeug", ("flask/", "werkzeug/", "flask_sqlalchemy/")),
    ("gunicorn/gevent", ("gunicorn/", "gevent/")),
)


def frames_of(stack: str) -> list[tuple[str, str]]:
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw.strip())
        frames.append((match["func"], match["file"]) if match else (raw.strip(), ""))
    return frames


def layer_of(frames: list[tuple[str, str]]) -> str:
    func, path = frames[-1]
    for name, needles in LAYERS:
        if any(n in path or n in func for n in needles):
            return name
    return "other: " + (path.rsplit("/", 2)[-2] if "/" in path else path or func)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--children", nargs="*", metavar="FUNCTION",
                        default=["receive", "Processor.handle", "register", "record_attempt",
                                 "resolve"],
                        help="break these functions down by direct callee")
    args = parser.parse_args()
    stacks: Counter[str] = Counter()
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack:
                stacks[stack] += int(count)
    total = sum(stacks.values())
    if not total:
        raise SystemExit("no samples")
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = frames_of(stack)
        layers[layer_of(frames)] += count
        leaves[f"{frames[-1][0]} ({frames[-1][1]})"] += count
        seen = set()
        for func, path in frames:
            key = f"{func} ({path})"
            if key not in seen and ("fakeproc/" in path or func in _WATCH):
                seen.add(key)
                inclusive[key] += count

    def show(title: str, counter: Counter[str], limit: int) -> None:
        print(f"\n{title}")
        for key, count in counter.most_common(limit):
            print(f"  {100 * count / total:5.1f}%  {key}")

    print(f"{total} samples from {len(args.files)} file(s)")
    show("by layer of the innermost frame (self time)", layers, 20)
    show("inclusive, fakeproc functions and a few landmarks", inclusive, args.top)
    show("hottest innermost frames (self time)", leaves, args.top)
    for parent in args.children:
        show(f"direct callees of {parent} (inclusive)", callees(stacks, parent), 12)


def callees(stacks: Counter[str], parent: str) -> Counter[str]:
    """Inclusive samples of what `parent` (a function name) calls directly."""
    out: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = frames_of(stack)
        for i, (func, _path) in enumerate(frames):
            if func == parent:
                if i + 1 < len(frames):
                    func2, path2 = frames[i + 1]
                    out[f"{func2} ({path2})"] += count
                else:
                    out["<self>"] += count
                break
    return out


_WATCH = {"Flask.full_dispatch_request", "Session.execute", "Session.commit", "Session.close",
          "Connection._exec_single_context", "SQLCompiler.__init__", "Compiled.__init__",
          "Pool.connect", "_ConnectionFairy._checkout", "QueuePool._do_get",
          "DefaultDialect.do_execute", "DefaultDialect.do_commit", "Cursor.execute",
          "AsyncWorker.handle_request", "Flask.__call__", "Flask.wsgi_app"}


if __name__ == "__main__":
    main()
