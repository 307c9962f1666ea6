"""Test doubles that speak real wire protocols (see provider.py)."""

from .provider import (
    FakeProvider,
    FakeState,
    RecordedRequest,
    make_provider_app,
    run_fake_provider,
)

__all__ = ["FakeProvider", "FakeState", "RecordedRequest", "make_provider_app", "run_fake_provider"]
