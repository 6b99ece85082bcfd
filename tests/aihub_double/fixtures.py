"""pytest fixtures for the AI Hub double. Enable with `pytest_plugins = ["aihub_double.fixtures"]`
in tests/conftest.py, or import the fixtures by name in a test module."""

from __future__ import annotations

import pytest

from .server import AIHubDouble


@pytest.fixture
def aihub_double():
    """A running AIHubDouble (jobs finish on their 3rd status GET); stopped after the test."""
    with AIHubDouble() as hub:
        yield hub
    assert not hub.server_errors, hub.server_errors[0]


@pytest.fixture
def aihub_fast():
    """A running AIHubDouble whose jobs are final on their first status GET, so the SDK's own
    `job.wait()` (which sleeps 10 s between polls) returns without sleeping."""
    with AIHubDouble(polls_before_done=0) as hub:
        yield hub
    assert not hub.server_errors, hub.server_errors[0]


@pytest.fixture
def aihub_client(aihub_double):
    """A real `qai_hub.Client` configured (ClientConfig: api_url/web_url/api_token) for `aihub_double`."""
    return aihub_double.client()
