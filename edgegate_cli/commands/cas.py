"""`edgegate cas`: inspect and check the content-addressed store."""

from __future__ import annotations

from itertools import chain
from typing import Annotated

import typer

app = typer.Typer(help="Inspect and check the content-addressed store (cas/).", no_args_is_help=True)


@app.command()
def verify(
    ctx: typer.Context,
    digests: Annotated[list[str] | None, typer.Argument(
        metavar="DIGEST", help="sha256:<hex> digests (default: all).", show_default=False)] = None,
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Re-hash stored blobs and list every corrupt or missing one (exit 1 if any).

    Checks every blob, or only the given digests. Nothing is deleted: a corrupt blob stays as evidence.
    """
    from ..errors import ExitCode, VerificationFailed
    from ..store.artifacts import verify_blobs
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out, write=False)
    with out.progress("Verifying blobs") as advance:
        report = verify_blobs(ws.db, ws.cas, digests or None,
                              progress=lambda done, total: advance(f"{done:,} of {total:,} blobs re-hashed"))
    out.emit(report, _render_verify)
    if report.ok:
        return
    if json_:  # the report is the one JSON document on stdout, as `run --json` does with its outcome
        raise typer.Exit(int(ExitCode.GATES_FAILED))
    raise VerificationFailed(
        f"{len(report.corrupt) + len(report.missing)} of {report.checked} blobs failed verification "
        f"({len(report.corrupt)} corrupt, {len(report.missing)} missing)",
        hint="the listed blobs were altered or removed on disk; re-ingest the original files")


def _render_verify(out, report) -> None:
    # full digests, each on a line of its own (the file path is in --json): what the user acts on
    for c in report.corrupt:
        out.line(f"corrupt {c.sha256}")
        out.line(f"  hashes to {c.actual}")
    for digest in report.missing:
        out.line(f"missing {digest}")
    if report.ok:
        out.line(f"{report.checked} blob{'' if report.checked == 1 else 's'} verified, all intact")


@app.command("ls")
def ls(
    ctx: typer.Context,
    limit: int = typer.Option(None, "--limit", min=1, help="List at most N artifacts (in digest order)."),
    json_: bool = typer.Option(False, "--json", help="Print the result as one JSON document, an artifact a line."),
) -> None:
    """List stored artifacts: digest, kind, size, created, expires, references, original name.

    Rows are printed as they are read, so a store of any size lists in constant memory: aligned columns
    on a terminal, tab-separated off one (for cut, awk, sort).
    """
    from itertools import islice

    from ..store.artifacts import iter_artifacts
    from ..ui.stream import stream_json_list, stream_rows
    from . import open_workspace, start

    out = start(ctx, json_)
    ws = open_workspace(out, write=False)
    items = islice(iter_artifacts(ws.db, ws.cas), limit)
    if json_:  # vars(): the dataclass's own flat dict, without asdict's deep copy
        stream_json_list(out, "artifacts", (vars(i) for i in items))
        return
    first = next(items, None)
    if first is None:
        out.line("The store is empty.")
        return
    # short digests and dates keep a line within 100 columns; --json has the full values
    stream_rows(out, ["digest", "kind", "bytes", "created", "expires", "refs", "original name"], (
        (i.sha256[7:19] + ("" if i.present else " (missing)"), i.kind or "untracked", f"{i.bytes:,}",
         (i.created_at or "-")[:10], (i.expires_at or "-")[:10], i.refs, i.original_name or "-")
        for i in chain((first,), items)), widths=[12, 15, 13, 10, 10, 4], right=[2, 5])
