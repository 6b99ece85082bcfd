"""`edgegate rollout plan|start|advance|status|list|explain|pause|resume|promote|abort|retry` (SPEC §10.4)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Staged, watched, resumable pushes of a release to the fleet, "
                  "rolled back automatically on failed health analysis.")

JSON_OPTION = typer.Option(False, "--json", help="Print the result as one JSON document.")
ID_ARG = typer.Argument(..., metavar="ID", help="The rollout id (see `edgegate rollout list`).")


def _plan_options(release, strategy, target, rollout_id, bake, max_bake, canary, steps, regions, release_b,
                  region_canary, concurrency, per_minute, device_timeout, retries, latency_pct, error_rate,
                  abort_count, abort_pct, min_executed, min_samples):
    from ..rollout.plan import Rate, Thresholds, check_rollout_id, parse_percents

    return dict(release=release, strategy=strategy, target=target,
                rollout_id=check_rollout_id(rollout_id) if rollout_id else None, bake_s=bake, max_bake_s=max_bake,
                canary_pct=canary, steps=parse_percents(steps, "--steps") if steps else None,
                regions=[r.strip() for r in regions.split(",") if r.strip()] if regions else None,
                release_b=release_b, region_canary_pct=region_canary,
                thresholds=Thresholds(latency_pct=latency_pct, error_rate=error_rate, abort_count=abort_count,
                                      abort_pct=abort_pct, min_executed=min_executed, min_samples=min_samples),
                rate=Rate(concurrency=concurrency, per_minute=per_minute, device_timeout_s=device_timeout,
                          retries=retries))


def plan_command(start_it: bool):
    def command(
        ctx: typer.Context,
        release: str = typer.Argument(..., metavar="NAME@VERSION", help="A published release."),
        strategy: str = typer.Option("canary", "--strategy", help="direct | canary | progressive | regional | ab"),
        target: str = typer.Option("all", "--target", metavar="FILTER", help="Devices (fleet filter grammar)."),
        rollout_id: str = typer.Option(None, "--id", metavar="ID", help="Rollout id (default: ro-<random>); "
                                       "cohorts are sha256(id ‖ device id), so the id fixes them."),
        bake: float = typer.Option(600.0, "--bake", metavar="SECONDS", help="Bake time per stage."),
        max_bake: float = typer.Option(None, "--max-bake", metavar="SECONDS", help="Inconclusive until then, "
                                       "then fail INCONCLUSIVE_TIMEOUT (default max(3 x bake, bake + 60))."),
        canary: float = typer.Option(10.0, "--canary", metavar="PCT", help="Canary percentage."),
        steps: str = typer.Option(None, "--steps", metavar="P1,P2,...", help="Progressive percentages."),
        regions: str = typer.Option(None, "--regions", metavar="R1,R2", help="Regional: region order."),
        release_b: str = typer.Option(None, "--release-b", metavar="NAME@VERSION", help="A/B: the B release."),
        region_canary: float = typer.Option(None, "--region-canary", metavar="PCT", help="Regional: a canary "
                                            "of PCT inside each region first."),
        concurrency: int = typer.Option(64, "--concurrency", min=1, help="Devices pushed at once."),
        per_minute: int = typer.Option(None, "--per-minute", min=1, help="At most this many pushes started a minute."),
        device_timeout: float = typer.Option(60.0, "--device-timeout", metavar="SECONDS", help="Per device."),
        retries: int = typer.Option(2, "--retries", min=0, max=10, help="Retries on transport failures."),
        latency_pct: float = typer.Option(20.0, "--latency-pct", help="Latency regression band (%)."),
        error_rate: float = typer.Option(0.05, "--error-rate", help="Error-rate limit (fraction)."),
        abort_count: int = typer.Option(None, "--abort-count", help="Failed activations that abort."),
        abort_pct: float = typer.Option(50.0, "--abort-pct", help="Failed activations (%) that abort."),
        min_executed: int = typer.Option(1, "--min-executed", help="Abort criteria apply from this many devices."),
        min_samples: int = typer.Option(20, "--min-samples", help="Inferences per side, else inconclusive."),
        via: str = typer.Option(None, "--via", metavar="s3://BUCKET/PREFIX", help="The pull path: stages are "
                                "cohort ranges of the channel manifest there; devices are those whose agents "
                                "report on the channel (direct, canary, progressive)."),
        channel: str = typer.Option(None, "--channel", metavar="NAME", help="With --via: the channel (default: "
                                    "the release's own)."),
        json_: bool = JSON_OPTION,
    ) -> None:
        from ..errors import InvalidInput
        from ..rollout.engine import start_rollout
        from ..rollout.ops import make_plan, make_pull_plan
        from . import open_workspace, start

        out = start(ctx, json_)
        opts = _plan_options(release, strategy, target, rollout_id, bake, max_bake, canary, steps, regions,
                             release_b, region_canary, concurrency, per_minute, device_timeout, retries,
                             latency_pct, error_rate, abort_count, abort_pct, min_executed, min_samples)
        ws = open_workspace(out)
        if via is None:
            if channel is not None:
                raise InvalidInput("--channel applies to the pull path only (with --via s3://...)", field="--channel")
            plan, devices = make_plan(ws, **opts)
            if start_it:
                start_rollout(ws, plan, devices)
        else:
            for option, value, default in (("--target", target, "all"), ("--regions", regions, None),
                                           ("--release-b", release_b, None), ("--region-canary", region_canary, None)):
                if value != default:
                    raise InvalidInput(f"{option} does not apply with --via: the devices are those reporting on the "
                                       "channel, placed by their cohort position", field=option)
            plan = make_pull_plan(ws, via=via, channel=channel, **{k: opts[k] for k in (
                "release", "strategy", "rollout_id", "bake_s", "max_bake_s", "canary_pct", "steps", "thresholds",
                "rate")})
            if start_it:
                from ..rollout.pull_engine import start_pull_rollout

                start_pull_rollout(ws, plan, progress=out.log)
        out.emit(plan, lambda o, p: _show_plan(o, p, start_it))
    return command


app.command("plan", help="Print the exact plan (stages, devices, bake, thresholds); changes nothing.\n\n"
            "Example: edgegate rollout plan quickstart@1.1.0 --strategy canary --canary 25 --target 'region=eu'")(
    plan_command(False))
app.command("start", help="Store the plan and begin (nothing is pushed until `rollout advance`).\n\n"
            "Example: edgegate rollout start quickstart@1.1.0 --strategy progressive --steps 10,50 --bake 900\n\n"
            "Pull path: edgegate rollout start quickstart@1.1.0 --via s3://fleet/edgegate --canary 5 --bake 900")(
    plan_command(True))


def _show_plan(out, plan, started: bool) -> None:
    verb = "Started" if started else "Plan for"
    out.line(f"{verb} rollout {plan.rollout_id}: {plan.release}, {plan.strategy}, {plan.device_count} device(s) "
             f"matching {plan.target!r}; bake {plan.bake_s:g} s (max {plan.max_bake_s:g} s)", style="bold")
    if plan.via:
        out.line(f"  over the pull path: channel {plan.channel} under {plan.via}; each stage is a cohort range "
                 "(devices below it move at their next poll)")
    for s in plan.stages:
        extra = f" release {s.release}" if s.release else ""
        if s.range_hi is not None:
            extra += f" range [0, {s.range_hi / 10_000:g}%)"
        out.line(f"  stage {s.index} {s.name}{extra}: {len(s.devices)} device(s): {', '.join(s.devices)}")
    t = plan.thresholds
    out.line(f"  rules: latency +{t.latency_pct:g}% (and +{t.latency_abs_ms:g} ms, p<{t.alpha:g}), errors "
             f">{t.error_rate:.0%}, abort at {t.abort_pct:g}% failed activations"
             + (f" or {t.abort_count}" if t.abort_count else "") + f" (min executed {t.min_executed})")
    if started:
        out.line(f"  next: edgegate rollout advance {plan.rollout_id}   (or from cron: rollout advance --all)")


@app.command()
def advance(
    ctx: typer.Context,
    rollout_id: str = typer.Argument(None, metavar="[ID]", help="The rollout (or --all)."),
    all_: bool = typer.Option(False, "--all", help="Every unfinished rollout (what cron runs)."),
    now: str = typer.Option(None, "--now", metavar="ISO", help="Evaluate as of this UTC time (tests, replays); "
                            "bake and lease times use it; messages to agents carry the real time."),
    json_: bool = JSON_OPTION,
) -> None:
    """Make the next allowed transitions under a lease: push a stage, analyse a baked one, roll back.
    Idempotent; two advancers at once never double-push. Exit 0 advanced/completed, 1 rolled back, 3 error.

    Example (crontab): */5 * * * * edgegate rollout advance --all --json >> /var/log/edgegate-rollout.log
    """
    from ..errors import ExitCode, InvalidInput
    from ..rollout.advance import advance as run_advance
    from ..rollout.store import FINISHED
    from . import open_workspace, start

    out = start(ctx, json_)
    if bool(rollout_id) == all_:
        raise InvalidInput("give a rollout ID or --all (not both)", field="ID")
    ws = open_workspace(out)
    when = ws.ctx.clock.now()
    if now:
        from ..evidence.dsse import parse_utc

        try:
            when = parse_utc(now, what="--now")
        except Exception:
            raise InvalidInput(f"--now {now!r} is not an ISO-8601 UTC time like 2026-01-01T00:00:00Z",
                               field="--now") from None
    ids = [rollout_id] if rollout_id else [r["id"] for r in ws.db.query(
        "SELECT id FROM rollouts WHERE plan_json IS NOT NULL AND finished_at IS NULL ORDER BY created_at")]
    results = [run_advance(ws, rid, now=when, progress=out.log) for rid in ids]
    out.emit({"rollouts": [r.model_dump() for r in results]}, _show_advance)
    if any(r.status == "failed" for r in results):  # a rollback some devices never confirmed
        raise typer.Exit(int(ExitCode.RUN_ERROR))
    if any(r.status in ("rolled_back", "rolling_back") for r in results):
        raise typer.Exit(int(ExitCode.GATES_FAILED))
    del FINISHED


def _show_advance(out, doc) -> None:
    if not doc["rollouts"]:
        out.line("No unfinished rollout.")
    for r in doc["rollouts"]:
        out.line(f"{r['rollout_id']}: {r['status']} (stage {r['stage']})" + (f", {r['reason']}" if r["reason"] else ""),
                 style="bold")
        for a in r["actions"]:
            out.line(f"  {a}")


@app.command()
def status(ctx: typer.Context, rollout_id: str = ID_ARG, json_: bool = JSON_OPTION) -> None:
    """A rollout's state, stages and every device's state (what its agent reported)."""
    from ..rollout.ops import status as get
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(get(open_workspace(out, write=False).db, rollout_id), _show_status)


def _show_status(out, s) -> None:
    out.line(f"{s.id}: {s.release} {s.strategy} — {s.status}" + (" (paused)" if s.paused else "")
             + (f", {s.reason}" if s.reason else ""), style="bold")
    out.line("  devices: " + ", ".join(f"{k} {v}" for k, v in sorted(s.devices.items())))
    out.table(None, ["device", "stage", "state", "code", "reports"],
              [(t["device_id"], str(t["stage"]), t["state"], t["code"] or "", (t["reported_sha256"] or "")[:19])
               for t in s.targets])


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Every rollout, newest first."""
    from ..rollout.ops import list_rollouts
    from . import open_workspace, start

    out = start(ctx, json_)
    rows = list_rollouts(open_workspace(out, write=False).db)
    out.emit({"rollouts": rows}, lambda o, d: o.table(None, ["id", "release", "strategy", "status", "created"], [
        (r["id"], r["release"], r["strategy"], r["status"], r["created_at"][:19]) for r in d["rollouts"]])
        if d["rollouts"] else o.line("No rollouts. Start one with `edgegate rollout start`."))


@app.command()
def explain(ctx: typer.Context, rollout_id: str = ID_ARG, json_: bool = JSON_OPTION) -> None:
    """Per stage: the analysis inputs, the numbers, the rule and the outcome."""
    from ..rollout.ops import explain as get
    from . import open_workspace, start

    out = start(ctx, json_)
    out.emit(get(open_workspace(out, write=False).db, rollout_id), _show_explain)


def _show_explain(out, d) -> None:
    out.line(f"{d['id']}: {d['status']}" + (f" — {d['reason']}" if d["reason"] else ""), style="bold")
    for s in d["stages"]:
        a = s["analysis"]
        out.line(f"  stage {s['stage']} {s['name']}: {s['status']}, outcome {s['outcome'] or '-'}")
        if a:
            n = a["numbers"]
            out.line(f"    {a['outcome']} ({a['reason']}), baseline: {n.get('baseline', '-')}")
            for key in ("candidate_inferences", "baseline_inferences", "candidate_errors", "candidate_p50_ms",
                        "baseline_p50_ms", "candidate_p90_ms", "baseline_p90_ms", "latency_change_pct", "p_value"):
                if n.get(key) is not None:
                    out.line(f"    {key}: {n[key]:.4g}" if isinstance(n[key], float) else f"    {key}: {n[key]}")
            for rule, text in (n.get("rules") or {}).items():
                out.line(f"    rule {rule}: {text}")
    if d["numbers"]:
        out.line(f"  decision numbers: {d['numbers']}")


def _steer(name: str, doc: str):
    def command(ctx: typer.Context, rollout_id: str = ID_ARG, json_: bool = JSON_OPTION) -> None:
        from ..rollout import ops
        from . import open_workspace, start

        out = start(ctx, json_)
        out.emit(getattr(ops, name)(open_workspace(out), rollout_id), _show_status)
    command.__doc__ = doc
    app.command(name)(command)


_steer("pause", "Pause: `advance` makes no transition until resumed (a rollback still proceeds).")
_steer("resume", "Resume a paused rollout.")
_steer("promote", "Pass the current stage now (skip the rest of its bake); the next advance pushes the next.")
_steer("abort", "Roll back: persisted now; the next `advance` sends the signed rollback directives.")
_steer("retry", "Put the current stage's failed, rejected and timed-out devices back to pending.")
