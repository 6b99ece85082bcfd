"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, SeaweedFS) through boto3 and the standard AWS
credential/endpoint chain: `s3://` URLs, streamed puts, length-capped gets, and one-line STORE_* errors.
boto3 is imported only when a store is opened."""

from .failures import map_store_error, safe_endpoint, store_errors
from .store import ObjectStore, S3Location, parse_s3_url

__all__ = ["ObjectStore", "S3Location", "parse_s3_url", "map_store_error", "safe_endpoint", "store_errors"]
