"""Which baseline samples a relative gate compares with (SPEC §6 item 7): paired or recorded.

`paired`: the baseline run's model was measured again in this run, interleaved with the candidate repeat
by repeat (B, A, B, A …), so both sides saw the same host; its payloads are read through this run's
mapping. `recorded`: the samples the baseline run stored, read through its own mapping. A gate asks for
`baseline_mode: paired` (the default) or `recorded`; a paired gate whose baseline could not be measured
again (no model bytes, inputs that do not fit…) falls back to recorded, and says why.
"""

from __future__ import annotations

from ..spec.pipeline import Gate

PAIRED, RECORDED = "paired", "recorded"


def wants_paired(gate: Gate) -> bool:
    """True for a relative gate that asks for (or defaults to) paired measurement."""
    return gate.relative and (gate.baseline_mode or PAIRED) == PAIRED


def baseline_side(gate: Gate, evidence, mapping: dict) -> tuple[str | None, str | None, list[dict], dict]:
    """(mode, why, baseline payloads, the mapping to read them through) for `gate` against `evidence` (an
    `evaluate.BaselineEvidence`), where `mapping` is this run's.

    The mode is None for evidence recorded before paired measurement existed (legacy records: they
    compare with the recorded samples, as they always did, and their results carry no mode).
    """
    if wants_paired(gate) and evidence.paired_payloads:
        return PAIRED, evidence.paired_reason, evidence.paired_payloads, mapping
    if evidence.mode is None:
        return None, None, evidence.payloads, evidence.mapping or {}
    if gate.baseline_mode == RECORDED:
        why = "baseline_mode: recorded in the pipeline: compared with the samples the baseline run stored"
    else:
        why = evidence.paired_reason or "the baseline was not measured again in this run"
        why = f"paired measurement was not possible ({why}): compared with the samples the baseline run stored"
    return RECORDED, why, evidence.payloads, evidence.mapping or {}


def default_statistic(mode: str | None) -> str:
    """What a relative gate without `statistic` compares: the 25th percentile of the pooled iterations against
    paired samples (bench/decision_quality.py: no false alarm on any recorded source, quiet or beside a CPU hog,
    where the median gave 0.3-0.7 %), SPEC's median against recorded ones (and in results stored before)."""
    return "p25" if mode == PAIRED else "median"
