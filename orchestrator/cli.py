"""``orchestrator``: parse arguments, call the library, print. User mistakes: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from trainer.errors import ConfigError

FORMATS = ("table", "csv", "json", "markdown")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator", description="Resumable transfer-learning sweeps on Ray Tune.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="validate a grid file, expand it into trials and run them")
    s.add_argument("grid", help="grid YAML file")
    s.add_argument("--dry-run", action="store_true", help="print the trials and their count; start nothing")
    s.add_argument("--storage", help="override the grid's storage URL or path (e.g. gs://bucket/sweeps)")
    s.add_argument("--name", help="override the grid's sweep name")
    _run_options(s)

    r = sub.add_parser("resume", help="finish a stopped sweep from its storage alone")
    r.add_argument("sweep", help="sweep URL (<storage>/<name>) or a name under ./runs")
    _run_options(r)

    st = sub.add_parser("status", help="trials by state, best so far, interruptions")
    st.add_argument("sweep")
    st.add_argument("--watch", action="store_true", help="refresh until interrupted")
    st.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes (--watch)")

    rep = sub.add_parser("report", help="distributions, test-set results, carbon: tables, plots, Markdown, HTML")
    rep.add_argument("sweep")
    rep.add_argument("--out", help="where to write (default: <sweep>/report/)")
    rep.add_argument("--metric", default="val_accuracy", help="ranking metric (default: mean val_accuracy)")
    rep.add_argument("--top-k", type=int, help="evaluate the top k configurations on the test set "
                     "(default: the best of each model and strategy)")  # fmt: skip
    rep.add_argument("--no-test", action="store_true", help="skip the test-set evaluation")

    res = sub.add_parser("results", help="print the results table")
    res.add_argument("sweep")
    res.add_argument("--format", choices=FORMATS, default="table")
    return p


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="address of an existing Ray cluster (default: $RAY_ADDRESS, else local)")
    p.add_argument("--deadline", help="stop cleanly before this much time has passed, e.g. 5h30m")
    p.add_argument("--dashboard-host", default="127.0.0.1", help="interface for the local Ray dashboard")


# ---------------------------------------------------------------- commands


def cmd_submit(args) -> int:
    from orchestrator import sweep as sw
    from orchestrator.schema import load_config

    sw.present_ray_token(args.address)
    cfg = load_config(args.grid, {"storage": args.storage, "name": args.name})
    deadline = sw.parse_duration(args.deadline) if args.deadline else None
    sweep = sw.from_config(cfg)
    if args.dry_run:
        for t in sweep.trials:
            print(f"{t.key}  {t.name}")
        print(f"{len(sweep.trials)} trials -> {sweep.url}")
        return 0
    _check_shared_storage(sweep.url, args.address)
    counts = sw.run(sweep, args.address, deadline, args.dashboard_host)
    return 0 if counts["failed"] == 0 else 1


def cmd_resume(args) -> int:
    from orchestrator import sweep as sw

    sw.present_ray_token(args.address)
    deadline = sw.parse_duration(args.deadline) if args.deadline else None
    sweep = sw.load(sw.resolve(args.sweep))
    _check_shared_storage(sweep.url, args.address)
    counts = sw.run(sweep, args.address, deadline, args.dashboard_host)
    return 0 if counts["failed"] == 0 else 1


def _check_shared_storage(url: str, address: str | None) -> None:
    import os

    from workers.storage import is_local

    if (address or os.environ.get("RAY_ADDRESS")) and is_local(url):
        print(
            f"note: {url} is a local path; on a multi-node cluster every node must see it (shared disk),"
            " or use a gs:// URL",
            file=sys.stderr,
        )


def cmd_status(args) -> int:
    from orchestrator import sweep as sw
    from orchestrator.status import render_status

    sweep = sw.load(sw.resolve(args.sweep))
    if not args.watch:
        render_status(sweep)
        return 0
    from rich.console import Console
    from rich.live import Live

    from orchestrator.status import status_view

    with Live(status_view(sweep), console=Console(), refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(args.interval)
                live.update(status_view(sweep))
        except KeyboardInterrupt:
            pass
    return 0


def cmd_report(args) -> int:
    from orchestrator import report
    from orchestrator import sweep as sw

    sweep = sw.load(sw.resolve(args.sweep))
    if args.metric not in ("val_accuracy", "val_loss", "val_balanced_accuracy", "val_macro_f1"):
        raise ConfigError(
            f"--metric: {args.metric!r}; valid: val_accuracy, val_loss, val_balanced_accuracy, val_macro_f1"
        )
    r = report.build(sweep, args.metric, args.top_k, evaluate=not args.no_test)
    out = report.write(sweep, r, args.out)
    missing = r.counts["pending"] + r.counts["running"] + r.counts["interrupted"]
    print(f"report: {out}/report.html ({len(r.figures)} figures, {len(r.test)} test evaluations)")
    if missing:
        print(f"note: {missing} of {len(r.trials)} trials have not finished; the report covers the others")
    return 0


def cmd_results(args) -> int:
    from orchestrator import sweep as sw
    from orchestrator.results import COLUMNS, collect

    sweep = sw.load(sw.resolve(args.sweep))
    frame = collect(sweep.url, sweep.trials)[COLUMNS]
    if args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif args.format == "json":
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict("records")
        ]
        print(json.dumps(rows, indent=1, default=str))
    elif args.format == "markdown":
        print(to_markdown(frame))
    else:
        with _wide_pandas():
            print(frame.to_string(index=False))
    return 0


def to_markdown(frame) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _wide_pandas():
    import pandas as pd

    return pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60)


COMMANDS = {
    "submit": cmd_submit,
    "resume": cmd_resume,
    "status": cmd_status,
    "results": cmd_results,
    "report": cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
