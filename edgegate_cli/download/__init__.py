"""Verified downloads: the core of the EdgeGate SDK and of agents that pull (SPEC §10.5).

    from edgegate_cli.download import fetch_release
    release = fetch_release("s3://fleet/edgegate/channels/stable.json", "quickstart@1.1.0",
                            keys=["publisher.pem"], dest="models/quickstart", cache="~/.cache/edgegate")

A single blob:

    from edgegate_cli.download import Blob, Fetcher, BlobCache

    blob = Blob("s3://releases/blobs/sha256/<hex>", sha256="<hex>", size=1234)
    with Fetcher() as fetcher:
        fetcher.fetch(blob, "model.onnx")                           # verified, or nothing written
        BlobCache("~/.cache/eg", max_bytes=2 << 30).fetch(blob, fetcher)  # content-addressed, LRU

A blob comes from an https:// or http:// URL (httpx), an s3:// URL (boto3, credentials from the standard
AWS chain) or a local file such as one inside a `releases export` directory (`export_blob`). At most the
declared length is read; the sha256 is checked while streaming; the file appears under its final name
only once verified (temp, fsync, rename). Transient failures are retried with exponential backoff.
Errors are EdgeGate errors: LENGTH_MISMATCH / DIGEST_MISMATCH (exit 1), STORE_* (exit 2 or 3).
Importing this package loads neither httpx, boto3 nor tenacity.
"""

from .blob import Blob, display_location, export_blob
from .cache import BlobCache
from .channel import ChannelLocation, channel_location, channel_url
from .fetch import Fetcher, FetchResult, RetryPolicy, fetch_blob, is_transient
from .release import FetchedRelease, fetch_release
from .verify import hash_file, write_verified

__all__ = ["Blob", "BlobCache", "ChannelLocation", "FetchResult", "FetchedRelease", "Fetcher", "RetryPolicy",
           "channel_location", "channel_url", "display_location", "export_blob", "fetch_blob", "fetch_release",
           "hash_file", "is_transient", "write_verified"]
