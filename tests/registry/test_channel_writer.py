"""The release box's channel document changes (registry/channel.py), pure: what a push and a rollout's
stages do to {releases, current, rollout, rollbacks}, checked by the channel manifest's own parser."""

from __future__ import annotations

import pytest

from edgegate_cli.errors import InvalidInput
from edgegate_cli.evidence import channel_manifest as cm
from edgegate_cli.registry.channel import promote_rollout, with_release, with_rollbacks, with_rollout

EMPTY = {"releases": [], "current": None, "rollout": None, "rollbacks": []}


def entry(version: str, name: str = "quickstart") -> dict:
    return {"name": name, "version": version, "identity": "sha256:" + "1" * 64,
            "manifest": {"sha256": "sha256:" + "2" * 64, "size": 10}, "evidence": None}


def valid(body: dict) -> dict:
    """The body makes a channel manifest the strict parser accepts."""
    cm.build_channel(channel="stable", version=1, issued_at="2026-01-01T00:00:00.000000Z",
                     expires_at="2026-01-08T00:00:00.000000Z", publisher="eg-" + "0" * 16, **body)
    return body


def test_a_push_lists_the_release_and_makes_it_current():
    body = valid(with_release(EMPTY, entry("1.0.0"), make_current=True))
    body = valid(with_release(body, entry("1.1.0"), make_current=True))
    assert body["current"] == {"name": "quickstart", "version": "1.1.0"}
    assert [r["version"] for r in body["releases"]] == ["1.0.0", "1.1.0"]
    again = with_release(body, entry("1.0.0"), make_current=False)  # re-listed once, moved to the end
    assert [r["version"] for r in again["releases"]] == ["1.1.0", "1.0.0"]
    with pytest.raises(InvalidInput, match="quickstart@1.0.0 is below quickstart@1.1.0"):
        with_release(body, entry("1.0.0"), make_current=True)
    other = valid(with_release(body, entry("0.1.0", name="detector"), make_current=True))  # another name: fine
    assert other["current"] == {"name": "detector", "version": "0.1.0"}


def test_a_rollout_runs_stages_and_is_promoted():
    body = with_release(with_release(EMPTY, entry("1.0.0"), make_current=True), entry("1.1.0"), make_current=False)
    with pytest.raises(InvalidInput, match="quickstart@2.0.0 is not on the channel yet"):
        with_rollout(body, rollout_id="ro-1", name="quickstart", version="2.0.0", seed="s", ranges=[[0, 10]])
    for hi in (10_000, 500_000):
        body = valid(with_rollout(body, rollout_id="ro-1", name="quickstart", version="1.1.0", seed="ro-1",
                                  ranges=[[0, hi]]))
        assert body["rollout"]["ranges"] == [[0, hi]] and body["current"]["version"] == "1.0.0"
    promoted = valid(promote_rollout(body))
    assert (promoted["current"]["version"], promoted["rollout"]) == ("1.1.0", None)
    with pytest.raises(InvalidInput, match="no rollout to promote"):
        promote_rollout(promoted)
    pushed = with_release(body, entry("1.1.0"), make_current=True)  # pushing the rollout's release promotes it
    assert (pushed["current"]["version"], pushed["rollout"]) == ("1.1.0", None)


def test_a_rollback_ends_the_rollout_and_carries_the_directives():
    body = with_release(with_release(EMPTY, entry("1.0.0"), make_current=True), entry("1.1.0"), make_current=False)
    body = with_rollout(body, rollout_id="ro-1", name="quickstart", version="1.1.0", seed="s", ranges=[[0, 9]])
    back = valid(with_rollbacks(body, [{"payloadType": "x", "payload": "", "signatures": []}],
                                current={"name": "quickstart", "version": "1.0.0"}))
    assert (back["current"]["version"], back["rollout"], len(back["rollbacks"])) == ("1.0.0", None, 1)


def test_the_release_list_is_bounded_and_keeps_what_is_in_use():
    body = with_release(EMPTY, entry("0.0.1"), make_current=True)
    body = with_release(body, entry("0.0.2"), make_current=False)
    body = with_rollout(body, rollout_id="ro-1", name="quickstart", version="0.0.2", seed="s", ranges=[[0, 9]])
    for i in range(3, 3 + cm.MAX_RELEASES):
        body = with_release(body, entry(f"0.0.{i}"), make_current=False)
    versions = [r["version"] for r in valid(body)["releases"]]
    assert len(versions) == cm.MAX_RELEASES and versions[:2] == ["0.0.1", "0.0.2"]  # current and rollout kept
    assert "0.0.3" not in versions and versions[-1] == f"0.0.{2 + cm.MAX_RELEASES}"
