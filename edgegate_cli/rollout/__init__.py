"""Rollouts (SPEC §10.4): staged, watched, resumable pushes of a signed release to the fleet.

Modules: `plan` (strategies -> stages -> deterministic cohorts; pure), `store` (persisted state and the
advance lease), `engine` (start and advance: the state machine), `push` (one device's push and rollback),
`wire` (concurrency and rate over the fleet's agent client), `analysis` (pass | fail | inconclusive |
error from the agents' metrics), `ops` (status, list, explain and the steering commands).
"""
