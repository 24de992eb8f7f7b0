"""``python -m pytest_pktgen parse FILE...``: saved pktgen device files as JSON lines;
``python -m pytest_pktgen clean``: undo what killed sessions left (NICs home, namespaces);
``python -m pytest_pktgen compare BEFORE AFTER``: two saved sessions point by point, each
metric's ratio with its interval and verdict, a forest plot; exit 0 (no regression, all
settled), 1 (a regression), 2 (something undecided) or 4 (bad usage, unreadable files, no
point in both: pytest's usage error)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import options
from .measurement import report, saved
from .measurement.compare import CONFIDENCE, DEFAULT_THRESHOLDS, exit_code
from .pktgen.parse import parse_device
from .run.leftovers import clean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_pktgen")
    sub = parser.add_subparsers(dest="command", required=True)
    parse = sub.add_parser("parse", help="turn saved /proc/net/pktgen/<dev> files into JSON lines")
    parse.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("clean", help="send NICs home and delete namespaces and links that killed "
                                 "sessions left behind (the next session does it too)")
    comp = sub.add_parser("compare", help="compare two saved sessions (results.json or "
                                          "baselines): exit 0 no regression and all settled, "
                                          "1 a regression, 2 something undecided")
    comp.add_argument("before", metavar="BEFORE")
    comp.add_argument("after", metavar="AFTER")
    comp.add_argument("--threshold", type=options.thresholds, default={},
                      metavar="METRIC=SHARE,...",
                      help="the smallest change that counts, per metric (defaults: " +
                      ",".join(f"{k}={v:g}" for k, v in DEFAULT_THRESHOLDS.items()) + ")")
    comp.add_argument("--confidence", type=options.confidence, default=CONFIDENCE,
                      metavar="LEVEL", help=f"of each interval (default {CONFIDENCE})")
    comp.add_argument("--plot", default="compare.png", metavar="PNG",
                      help="the forest plot's file (default compare.png; '' for none)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse's 2 for bad usage is compare's "undecided": 4
        return 4 if exit.code == 2 else exit.code
    if args.command == "clean":
        return _clean()
    if args.command == "compare":
        return _compare(args)
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


def _compare(args) -> int:
    try:
        before, after = saved.load(args.before), saved.load(args.after)
    except saved.SavedError as err:
        print(f"pytest-pktgen compare: {err}", file=sys.stderr)
        return 4
    found, only = saved.compare_sessions(before, after,
                                         {**DEFAULT_THRESHOLDS, **args.threshold},
                                         args.confidence)
    print(f"{args.after} against {args.before}:")
    for line in report.comparison_table(found) if found else ["no point measured in both"]:
        print(line)
    for line in only:
        print(line)
    print(report.comparison_summary(found))
    if found and args.plot:
        path = report.plot_forest(found, Path(args.plot), f"{args.after} against {args.before}")
        print(f"forest plot: {path.resolve()}")
    return exit_code(found) if found else 4


def _clean() -> int:
    said, complete = clean()
    for line in said:
        print(f"pytest-pktgen: {line}")
    if not said:
        print("pytest-pktgen: nothing left by dead sessions")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
