"""``python -m pytest_pktgen parse FILE...``: saved pktgen device files as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys

from .parse import parse_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_pktgen")
    sub = parser.add_subparsers(dest="command", required=True)
    parse = sub.add_parser("parse", help="turn saved /proc/net/pktgen/<dev> files into JSON lines")
    parse.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
