"""`edgegate gc`: remove expired, unreferenced blobs from the store."""

from __future__ import annotations

import typer

app = typer.Typer()


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; remove nothing."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove expired, unreferenced blobs from the store and report the bytes freed.

    An artifact expires 30 days after its last ingest, and stays while a kept run, pack or bundle uses it.

    Untracked blobs and stale temp files older than a day are removed too.
    """
    from ..store.retention import collect_garbage
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out)
    report = collect_garbage(ws.db, ws.cas, dry_run=dry_run)
    out.emit(report, _render)


def _render(out, report) -> None:
    from ..ui.stream import stream_rows

    verb, done = ("Would free", "would be removed") if report.dry_run else ("Freed", "removed")
    if report.removed:  # a row at a time: a first gc of a big store can list thousands
        stream_rows(out, ["digest", "reason", "kind", "bytes", "original name"], (
            (i.sha256[7:19] if i.sha256 else "-", i.reason, i.kind or "-", f"{i.bytes:,}",
             i.original_name or "-") for i in report.removed), widths=[12, 10, 15, 13], right=[3])
    out.line(f"{verb} {report.bytes_freed:,} bytes ({len(report.removed)} {done}; "
                f"{report.kept_referenced} expired but still referenced)")
