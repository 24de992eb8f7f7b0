"""``python -m pytest_pktgen parse FILE...``: saved pktgen device files as JSON lines;
``python -m pytest_pktgen clean``: undo what killed sessions left (NICs home, namespaces);
``python -m pytest_pktgen compare BEFORE AFTER``: two saved sessions point by point, each
metric's ratio with its interval and verdict, a forest plot; exit 0 (no regression, all
settled), 1 (a regression), 2 (something undecided) or 4 (bad usage, unreadable files, no
point in both: pytest's usage error);
``python -m pytest_pktgen bisect-run --good good.json -- TESTS``: one step of ``git bisect run``
in a kernel tree (:mod:`pytest_pktgen.bisect`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import bisect, options
from .measurement import report, saved
from .measurement.compare import CONFIDENCE, DEFAULT_THRESHOLDS, with_defaults
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
    comp.add_argument("--plot", default="compare.png", metavar="PNG",
                      help="the forest plot's file (default compare.png; '' for none)")
    step = sub.add_parser("bisect-run", help="one step of git bisect run in a kernel tree: "
                                              "build, boot in the VM lab, run the tests, judge "
                                              "against the good kernel: exit 0 good, 1 bad, "
                                              "125 skip")
    good = step.add_mutually_exclusive_group(required=True)
    good.add_argument("--good", metavar="JSON", help="the good kernel's saved session "
                      "(results.json or a baseline)")
    good.add_argument("--good-kernel", metavar="PATH", help="the good kernel (bzImage or built "
                      "tree), measured side by side in each step")
    step.add_argument("--tree", default=".", metavar="DIR",
                      help="the kernel tree git bisect checked out (default: here)")
    step.add_argument("--kconfig", default=str(bisect.KCONFIG), metavar="FILE",
                      help="options forced on allnoconfig (default: the lab's, patches/kconfig)")
    step.add_argument("--blocks", type=options.even_blocks, default=4, metavar="N",
                      help="with --good-kernel: the A/B blocks of each step, A B B A ... "
                      "(even; default 4)")
    for one in (comp, step):
        one.add_argument("--threshold", type=options.thresholds, default={},
                         metavar="METRIC=SHARE,...",
                         help="the smallest change that counts, per metric (defaults: " +
                         ",".join(f"{k}={v:g}" for k, v in DEFAULT_THRESHOLDS.items()) + ")")
        one.add_argument("--confidence", type=options.confidence, default=CONFIDENCE,
                         metavar="LEVEL", help=f"of each interval (default {CONFIDENCE})")
    step.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARGS",
                      help="after --: the tests and their options, as for pytest")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse's 2 for bad usage is compare's "undecided"
        if exit.code != 2:
            return exit.code
        # 4, pytest's usage error; for git bisect run, above 127 (stop the bisect)
        return 128 if "bisect-run" in (sys.argv[1:] if argv is None else argv) else 4
    if args.command == "clean":
        return _clean()
    if args.command == "compare":
        return _compare(args)
    if args.command == "bisect-run":
        return _bisect(args)
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
    _, code = report.judge(before, after, with_defaults(args.threshold), args.confidence,
                           title=f"{args.after} against {args.before}", echo=print,
                           plot=Path(args.plot) if args.plot else None)
    return code


def _bisect(args) -> int:
    try:
        return bisect.step(Path(args.tree).resolve(), args.pytest_args, good=args.good,
                           good_kernel=args.good_kernel,
                           thresholds=with_defaults(args.threshold),
                           confidence=args.confidence, blocks=args.blocks,
                           kconfig=Path(args.kconfig))
    except saved.SavedError as err:
        # git bisect run stops at an exit code above 127: a bad --good file ends the bisect
        print(f"pytest-pktgen bisect-run: --good {err}", file=sys.stderr)
        return 128


def _clean() -> int:
    said, complete = clean()
    for line in said:
        print(f"pytest-pktgen: {line}")
    if not said:
        print("pytest-pktgen: nothing left by dead sessions")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
