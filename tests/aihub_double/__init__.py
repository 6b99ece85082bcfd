"""A local AI Hub protocol double for tests: the real qai_hub SDK talks to it over HTTP.

See README.md in this directory. Typical use:

    from tests.aihub_double import AIHubDouble

    with AIHubDouble(polls_before_done=0) as hub:
        client = hub.client()          # qai_hub.Client(config=ClientConfig(api_url=hub.url, ...))
        client.get_devices()
"""

from .devices import DeviceSpec, default_devices
from .payloads import ProfileKnobs
from .server import AIHubDouble, HttpFault, RequestRecord
from .store import FailureRule

__all__ = ["AIHubDouble", "DeviceSpec", "FailureRule", "HttpFault", "ProfileKnobs", "RequestRecord",
           "default_devices"]
