"""`edgegate pack`: PromptPacks, the versioned and immutable prompt sets that GenAI gates score."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Add, list, show, validate, diff and export PromptPacks.")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")


@app.command()
def add(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A PromptPack JSON file."), json_: bool = JSON_OPTION) -> None:
    """Validate, canonicalize and store a pack version. The same id and version again is a no-op if the
    content is the same, and refused (exit 2) if it differs: publish a new version instead."""
    from ..spec.promptpacks import add_pack
    from . import open_workspace, start

    out = start(ctx, json_)
    result = add_pack(open_workspace(out), file)
    verb = "Added" if result.status == "added" else "Unchanged:"
    out.emit(result, lambda out, r: out.line(f"{verb} {r.pack_id}@{r.version} ({r.cases} cases, {r.sha256[:19]})"))


@app.command("list")
def list_(
    ctx: typer.Context,
    json_: bool = JSON_OPTION) -> None:
    """List the stored pack versions, newest version first."""
    from ..spec.promptpacks import list_packs
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(list_packs(open_workspace(out, write=False)), _render_list)


def _render_list(out, listing) -> None:
    if not listing.packs:
        out.line("No PromptPacks yet. Add one with `edgegate pack add FILE`.")
        return
    out.table(None, ["pack", "version", "cases", "digest", "added"], [
        (p.pack_id, p.version, p.cases, p.sha256[7:19], (p.created_at or "")[:10]) for p in listing.packs])


@app.command()
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="ID[@VERSION]", help="A pack id (newest version) or id@version."),
         json_: bool = JSON_OPTION) -> None:
    """Show a stored pack: its digest and each case's prompt and check."""
    from ..spec.promptpacks import get_pack
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(get_pack(open_workspace(out, write=False), ref), _render_show)


def _render_show(out, pack) -> None:
    from ..spec.promptpack_format import effective_cases

    out.line(f"{pack.pack_id}@{pack.version} {pack.sha256[:19]} ({pack.cases} cases, added {pack.created_at[:10]})")
    if pack.description:
        out.line(pack.description)
    out.table(None, ["case", "prompt", "check", "max tokens"], [
        (c["case_id"], c.get("prompt") or " / ".join(f"{m['role']}: {m['content']}" for m in c["messages"]),
         c["expected"]["type"], c["max_new_tokens"]) for c in effective_cases(pack.document)])


@app.command()
def validate(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A PromptPack JSON file."), json_: bool = JSON_OPTION) -> None:
    """Check a pack file as `pack add` would, without storing anything; print its digest."""
    from ..spec.promptpack_format import validate_pack_file
    from . import start

    out = start(ctx, json_)
    out.emit(validate_pack_file(file), lambda out, p: out.line(
        f"{p.source}: valid PromptPack {p.pack_id}@{p.version} ({p.cases} cases, {p.sha256[:19]})"))


@app.command()
def diff(
    ctx: typer.Context,
    a: str = typer.Argument(..., metavar="A", help="A pack file, or ID[@VERSION] of a stored pack."),
    b: str = typer.Argument(..., metavar="B", help="Another pack file or stored pack."),
    json_: bool = JSON_OPTION,
) -> None:
    """Show what changed from pack A to pack B: cases added, removed and changed (old and new values), and
    defaults. Exits 0 when the packs are identical, 1 when they differ (as `diff` does).

    An existing file wins over a stored pack of the same name."""
    from ..errors import ExitCode
    from ..spec.promptpacks import diff_pack_refs
    from . import open_workspace, start

    out = start(ctx, json_)
    result = diff_pack_refs(a, b, lambda: open_workspace(out, write=False))
    out.emit(result, _render_diff)
    if not result.identical:
        raise typer.Exit(int(ExitCode.GATES_FAILED))


def _value(v) -> str:
    import json

    text = "(absent)" if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _render_diff(out, d) -> None:
    out.line(f"{d.a} ({d.a_sha256[7:19]}) -> {d.b} ({d.b_sha256[7:19]})")
    if d.identical:
        out.line("Identical canonical content.")
    lines = [f"+ case {c}" for c in d.added] + [f"- case {c}" for c in d.removed]
    for c in d.changed:
        lines += [f"~ case {c.case_id}.{k}: {_value(v['a'])} -> {_value(v['b'])}" for k, v in c.values.items()]
    lines += ([f"~ defaults.{k}: {v['a']} -> {v['b']}" for k, v in d.defaults_changed.items()]
              + [f"~ {k}: {_value(v['a'])} -> {_value(v['b'])}" for k, v in d.field_values.items()]
              + (["~ case order"] if d.order_changed else []))
    for text in lines:
        out.line(text)


@app.command()
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="ID@VERSION", help="The stored pack (an id alone: newest)."),
    out_file: Path = typer.Option(None, "--out", help="Write the canonical bytes (their sha256 is the pack "
                                  "digest) to this file instead of printing the document.", show_default=False),
    json_: bool = JSON_OPTION,
) -> None:
    """Export a stored pack: to stdout as JSON, or with --out as its exact canonical bytes."""
    from ..spec.promptpacks import get_pack, write_export
    from . import open_workspace, start

    out = start(ctx, json_)
    if out_file is None:
        out.emit(get_pack(open_workspace(out, write=False), ref).document)
        return
    result = write_export(open_workspace(out, write=False), ref, out_file)
    out.emit(result, lambda out, r: out.line(
        f"Wrote {r.pack_id}@{r.version} to {r.out} ({r.bytes} bytes, {r.sha256[:19]})"))
