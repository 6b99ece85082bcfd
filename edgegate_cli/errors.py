"""The single taxonomy of EdgeGate failures: stable exit codes (SPEC §5) and error codes.

Core modules raise these; `cli.py` is the only place that turns them into an exit.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum, unique


@unique
class Verdict(StrEnum):
    """What gating concludes about a run (SPEC §6): a pure function of its evidence."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # no verdict could be reached: a flaky or missing metric, a noisy host


@unique
class ExitCode(IntEnum):
    OK = 0
    GATES_FAILED = 1  # a gate failed, or a verification failed
    INVALID_INPUT = 2  # usage error or invalid input
    RUN_ERROR = 3  # flaky or missing metric, device or backend failure, timeout
    INTERNAL = 4  # a bug in EdgeGate
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as a shell reports it; a run in progress is stored as error INTERRUPTED
    BROKEN_PIPE = 141  # stdout closed early (`edgegate ... | head`), as a shell reports SIGPIPE

    @classmethod
    def for_verdict(cls, verdict: Verdict | str) -> ExitCode:
        """A verdict's exit code: passed 0, failed 1, anything else (error) 3."""
        return {Verdict.PASSED: cls.OK, Verdict.FAILED: cls.GATES_FAILED}.get(verdict, cls.RUN_ERROR)


class EdgeGateError(Exception):
    """Base of every expected failure.

    `code` is SPEC's UPPER_SNAKE error code, `exit_code` the process exit code.
    `message` names the file/field/value; `hint` names the next thing to do.
    """

    exit_code: ExitCode = ExitCode.INVALID_INPUT
    code: str = "INVALID_INPUT"

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None,
                 field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint,
                "exit_code": int(self.exit_code)}


class InvalidInput(EdgeGateError):
    code = "INVALID_INPUT"


class LimitExceeded(EdgeGateError):
    code = "LIMIT_EXCEEDED"


class NotFound(EdgeGateError):
    code = "NOT_FOUND"


class StateTooNew(EdgeGateError):
    code = "STATE_TOO_NEW"


class HomeUnusable(EdgeGateError):
    """The home cannot serve this command: a file, missing (an explicit --home), or read-only for a writer."""

    code = "HOME_UNUSABLE"


class PackVersionExists(EdgeGateError):
    code = "PACK_VERSION_EXISTS"


class RunError(EdgeGateError):
    """A run could not produce a verdict (exit 3)."""

    exit_code = ExitCode.RUN_ERROR
    code = "RUN_ERROR"


class RunActive(RunError):
    code = "RUN_ACTIVE"


class MissingRequiredMetric(RunError):
    code = "MISSING_REQUIRED_METRIC"


class SubmissionFailed(RunError):
    code = "SUBMISSION_FAILED"


class DeviceJobFailed(RunError):
    code = "DEVICE_JOB_FAILED"


class RunTimeout(RunError):
    code = "TIMEOUT"


class CollectionFailed(RunError):
    code = "COLLECTION_FAILED"


class BackendUnavailable(RunError):
    code = "BACKEND_UNAVAILABLE"


class BundleFailed(RunError):
    """A run finished, but its evidence bundle could not be written (`run --bundle`)."""

    code = "BUNDLE_FAILED"


class NoBaseline(RunError):
    """A relative gate found no baseline and the run was started with --require-baseline."""

    code = "NO_BASELINE"


class NoisyHost(RunError):
    """Too many measurement repeats were starved of CPU by other processes: the timings measure the host,
    not the model, so no verdict is given (SPEC §6 item 7). Gating returns it as verdict `error`."""

    code = "NOISY_HOST"


class VerificationFailed(EdgeGateError):
    """Evidence did not verify (exit 1): a signature, a hash, an extra file."""

    exit_code = ExitCode.GATES_FAILED
    code = "VERIFICATION_FAILED"


class CorruptBlob(VerificationFailed):
    code = "CORRUPT_BLOB"

    def __init__(self, path: str, expected: str, actual: str):
        super().__init__(f"{path}: content hash is sha256:{actual}, expected sha256:{expected}",
                         hint="the blob was altered on disk; re-ingest the original file", path=path)
        self.expected = expected
        self.actual = actual


# Refusals of a signed release or rollback directive (RELEASE_CONTRACT.md): each its own code, so the
# agent and `releases verify` map them without parsing messages.
class SignatureInvalid(VerificationFailed):
    code = "SIGNATURE_INVALID"


class KeyUntrusted(VerificationFailed):
    code = "KEY_UNTRUSTED"


class KeyRevoked(VerificationFailed):
    code = "KEY_REVOKED"


class ManifestExpired(VerificationFailed):
    code = "MANIFEST_EXPIRED"


class ManifestInvalid(VerificationFailed):
    code = "MANIFEST_INVALID"


# Refusals of a signed channel manifest (the pull path, SPEC §10.5; TUF's freshness rules).
class ChannelExpired(VerificationFailed):
    """The channel manifest's expires_at has passed (checked against the update's fixed start time)."""

    code = "CHANNEL_EXPIRED"


class ChannelRollback(VerificationFailed):
    """The channel manifest's version is lower than one already seen (or the same version with other content)."""

    code = "CHANNEL_ROLLBACK"


# --- Object stores and verified downloads (SPEC §10.5; issue 15) ---------------------------------------
# "Store" is wherever a blob is fetched from: an S3-compatible bucket, an HTTP(S) server, an export directory.
# `transient` says whether trying again later may succeed (the download retry policy reads it).


class StoreCredentialsMissing(InvalidInput):
    """No S3 credentials in the standard AWS chain (env, AWS_PROFILE, ~/.aws), or a named profile is absent."""

    code = "STORE_CREDENTIALS_MISSING"


class StoreDenied(InvalidInput):
    """The store refused the request: wrong key, bad signature, or no permission for this bucket/key."""

    code = "STORE_DENIED"


class StoreNotFound(NotFound):
    """The bucket, key, URL or file does not exist."""

    code = "STORE_NOT_FOUND"


class StoreUnreachable(RunError):
    """No usable connection to the store: refused or reset, DNS, timeout (transient), or TLS verification
    failed (not transient: asking again meets the same certificate)."""

    code = "STORE_UNREACHABLE"

    def __init__(self, message: str, *, transient: bool = True, **kwargs):
        super().__init__(message, **kwargs)
        self.transient = transient


class StoreError(RunError):
    """The store answered with an error that is not ours to fix (5xx, throttling, unexpected status)."""

    code = "STORE_ERROR"

    def __init__(self, message: str, *, transient: bool = False, **kwargs):
        super().__init__(message, **kwargs)
        self.transient = transient



# --- Blobs whose bytes are not the declared ones (release files; the pull path's downloads) ------------
class LengthMismatch(VerificationFailed):
    """A blob is longer or shorter than its declared length (reading stops at the declared length)."""

    code = "LENGTH_MISMATCH"


class DigestMismatch(VerificationFailed):
    """A blob's sha256 is not the declared one (or, for `publish`, the evidence is of another model)."""

    code = "DIGEST_MISMATCH"


class FileMissing(VerificationFailed):
    """A file a signed manifest names is not there."""

    code = "FILE_MISSING"


class ExtraFile(VerificationFailed):
    """A file no signed manifest names sits where only named files may be (an exported release)."""

    code = "EXTRA_FILE"


# --- Releases (SPEC §10.1): `publish` refuses unless the evidence proves the model (exit 1) -------------
class ReleaseRefused(EdgeGateError):
    """`publish` will not make this release: the evidence does not prove the model."""

    exit_code = ExitCode.GATES_FAILED
    code = "RELEASE_REFUSED"


class NotProven(ReleaseRefused):
    """No evidence, or evidence that reaches no verdict (a run error): nothing proves the model."""

    code = "NOT_PROVEN"


class EvidenceFailed(ReleaseRefused):
    """The verdict re-derived from the evidence is `failed`: a required gate failed."""

    code = "EVIDENCE_FAILED"


class EvidenceUntrusted(ReleaseRefused):
    """The evidence is signed by a key this home does not trust, or one that is revoked."""

    code = "EVIDENCE_UNTRUSTED"


class EvidenceInvalid(ReleaseRefused):
    """The evidence does not verify: altered after signing, a bad signature, a hostile or foreign zip."""

    code = "EVIDENCE_INVALID"


class EvidenceInconsistent(ReleaseRefused):
    """The verdict re-derived from the evidence's raw data is not the one it was signed with."""

    code = "EVIDENCE_INCONSISTENT"


class ReleaseExists(EdgeGateError):
    """NAME@VERSION is published with other bytes: versions are immutable (exit 2)."""

    code = "RELEASE_EXISTS"


class ReleaseInUse(EdgeGateError):
    """A device runs the release, or a rollout targets it: it cannot be deleted (exit 2)."""

    code = "RELEASE_IN_USE"
