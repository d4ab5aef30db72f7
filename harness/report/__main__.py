"""`python -m harness.report PATH [PATH ...] [--out DIR] [--storage URL] [--study NAME]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.report.runs import ReportInputError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report",
        description="Write report.html and PNG figures comparing GSPO-token, GRPO and GSPO runs.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="multirun dir, study sweep dir, or run dirs")
    parser.add_argument("--out", type=Path, help="output dir (default: PATH/report for one PATH, else ./report)")
    parser.add_argument(
        "--storage", help="Optuna storage: SQLAlchemy URL or journal file (default: a journal file found in PATH)"
    )
    parser.add_argument("--study", help="study name, when the storage holds several")
    parser.add_argument(
        "--finalists",
        action="store_true",
        help="report each study's winning finalist re-runs (the studies under PATH: a tuned comparison's arms)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from harness.report.build import build_report  # matplotlib/optuna only after the arguments are fine

    try:
        report = build_report(args.paths, args.out, args.storage, args.study, args.finalists)
    except ReportInputError as error:
        print(f"harness.report: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # writing the page or a figure: a full disk, a directory that became read-only
        where = f" ({error.filename})" if error.filename else ""
        print(f"harness.report: error: cannot write the report: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"harness.report: warning: {warning}", file=sys.stderr)
    print(f"harness.report: wrote {report.html}")
    print(f"harness.report: figures ({len(report.figures)}): " + ", ".join(str(p) for p in report.figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
