"""Fixtures of the deployment tests: the chart rendered once per case for the session."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_chart import CI_VALUES, load_values, manifests


@pytest.fixture(scope="session")
def rendered_cases() -> dict[str, list[dict[str, Any]]]:
    """Objects per case (the default values and every file in helm/aifw/ci/)."""
    out = {"default": manifests(None)}
    for path in CI_VALUES:
        out[path.stem] = manifests(load_values(path))
    return out


@pytest.fixture(params=["default"] + [p.stem for p in CI_VALUES])
def case_objects(request: pytest.FixtureRequest, rendered_cases) -> list[dict[str, Any]]:
    return rendered_cases[request.param]
