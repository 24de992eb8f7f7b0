"""``python -m pytest_pktgen parse FILE...``: saved pktgen device files as JSON lines;
``python -m pytest_pktgen clean``: undo what killed sessions left (NICs home, namespaces)."""

from __future__ import annotations

import argparse
import json
import sys

from .pktgen.parse import parse_device
from .run.leftovers import clean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_pktgen")
    sub = parser.add_subparsers(dest="command", required=True)
    parse = sub.add_parser("parse", help="turn saved /proc/net/pktgen/<dev> files into JSON lines")
    parse.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("clean", help="send NICs home and delete namespaces and links that killed "
                                 "sessions left behind (the next session does it too)")
    args = parser.parse_args(argv)
    if args.command == "clean":
        return _clean()
    status = 0
    for name in args.files:
        try:
            with open(name) as f:
                device = parse_device(f.read())
        except (OSError, ValueError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"file": name, **device.as_dict()}))
    return status


def _clean() -> int:
    said, complete = clean()
    for line in said:
        print(f"pytest-pktgen: {line}")
    if not said:
        print("pytest-pktgen: nothing left by dead sessions")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
