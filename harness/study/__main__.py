"""`python -m harness.study show|best|dashboard STORAGE`: inspect a study."""

from __future__ import annotations

import argparse
import sys

import optuna

from harness.config.schema import ConfigError
from harness.runtime import redact
from harness.study import finalists
from harness.study.backends import load_study, open_storage
from harness.study.results import best_record, format_best, single_seed_best


def trials_table(study: optuna.Study) -> str:
    rows = [("trial", "state", "value", "last step", "seed", "params", "note")]
    for t in study.get_trials(deepcopy=False):
        value = "" if t.value is None else f"{t.value:.4f}"
        step = str(max(t.intermediate_values)) if t.intermediate_values else ""
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        note = t.user_attrs.get("fail_reason", "")
        if "failed_trial" in t.system_attrs:
            note = f"retry of trial {t.system_attrs['failed_trial']}"
        if finalists.is_finalist(t):
            source, seed = finalists.finalist_key(t)
            note = " ".join(filter(None, [f"finalist: trial {source} on fresh seed {seed}", note]))
        seed = str(t.user_attrs.get(finalists.SEED, ""))
        rows.append((str(t.number), t.state.name, value, step, seed, params, note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.study", description="Inspect an Optuna study.")
    parser.add_argument("command", choices=("show", "best", "dashboard"))
    parser.add_argument("storage", help="sweep directory, journal file, or SQLAlchemy URL")
    parser.add_argument("--study", default=None, help="study name (needed when the storage holds several)")
    parser.add_argument("--port", type=int, default=8080, help="dashboard port (bound to 127.0.0.1)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage({"storage": args.storage})
        study = load_study(storage, args.study, redact.mask(args.storage))
    except ConfigError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    trials = study.get_trials(deepcopy=False)
    direction = study.direction.name.lower()
    best = single_seed_best(trials, direction)
    metric = study.user_attrs.get("metric", "objective")
    if args.command == "show":
        print(trials_table(study))
        if best is not None and any(map(finalists.is_finalist, trials)):
            print(format_best(best_record(study.study_name, best, metric, trials, direction=direction)))
    elif args.command == "best":
        if best is None:
            print(f"harness: study {study.study_name} has no completed trial yet", file=sys.stderr)
            raise SystemExit(1) from None
        print(format_best(best_record(study.study_name, best, metric, trials, direction=direction)))
    else:
        from optuna_dashboard import run_server

        print(f"harness: optuna-dashboard on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
        run_server(storage, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
