"""The release registry (SPEC §10.1): only proven models become signed releases.

A release is a signed manifest (`evidence/release_manifest.py`, RELEASE_CONTRACT.md) that names a model
by digest and the evidence that proved it. `publish` builds one only after `proof.prove` has verified
the evidence bundle with a trusted, unrevoked key, re-derived its verdict (`gating.bundle_reevaluation`)
and matched its subject to the model's identity (`canonical.model_identity`, the rule `run` uses).

Modules: `names` (name, semver, NAME@VERSION), `model_files` (a model's files and identity),
`reference` (reference inputs/outputs), `proof`, `publish` (the orchestration), `ledger` (storing a
built release: blobs, row, references, audit), `records` (the `releases` table: list, history,
deprecate, delete), `manifests` (a stored manifest read back; `show`), `verify` (a manifest file, an
exported directory, or a release of this home), `export` (the self-contained directory of
RELEASE_CONTRACT.md).

Layering: registry may import `gating` (tests/test_architecture.py): a release is built on a verdict
re-derived by gating, and gating never imports registry, so no cycle.

State (migration m005_releases): `releases` (PK name, version; a deleted release stays as a tombstone
with `deleted_at`, so its version is never reused with other bytes); every blob a release needs is
referenced in `artifact_refs` as ('release', 'NAME@VERSION') and kept by retention while the row is
not deleted. `releases delete` reads two tables that the fleet and rollout issues fill (they may add
columns, but must keep these and their meaning):

- `devices(device_id PK, active_release, previous_release, ...)`: the release a device runs and the one
  it holds as its rollback target, each "NAME@VERSION" or NULL.
- `rollouts(id PK, release, rollback_release, status, created_at, finished_at, ...)`: the release a
  rollout pushes and the one it rolls back to; a rollout with `finished_at` NULL is still running.

A release is in use (RELEASE_IN_USE) while any device names it as active or previous, or any unfinished
rollout names it as its release or rollback release.
"""
