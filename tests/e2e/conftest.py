"""The end-to-end tests that share one demo stack (started once per session, when first asked for)."""
from __future__ import annotations

import pytest

from tests.e2e.demo_stack import start_demo_stack, stop_demo_stack


@pytest.fixture(scope="session")
def demo_stack():
    stack = start_demo_stack()
    yield stack
    stop_demo_stack(stack.env, stack.home)
