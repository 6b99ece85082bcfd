"""The edge agent (SPEC §10.3): an ASGI service on each device that refuses what it cannot trust and
swaps models without dropping a request.

Its import closure stays small (it runs on modest devices): only the standard library, Starlette,
uvicorn, ONNX Runtime, numpy, PyNaCl, semver, prometheus-client, and from EdgeGate only `errors`,
`dsse`, `signed_json`, `release_manifest` and `rollback_directive`. tests/agent checks it.

    config      the TOML config file            state       state.json, written before any acknowledgement
    codes       refusal codes and HTTP statuses trust       the checks a deploy passes before it is accepted
    blobs       the content-addressed store     models      ONNX Runtime sessions, warm-up, the serving slot
    health      metrics and per-version health  runtime     the agent: restore, status, infer
    deploy      accept, stage, load, swap       rollback    the signed way down
    bodies      bounded, timed request bodies   app         the HTTP routes
    server      TLS with required client certificates, uvicorn
"""
