"""Integration tests on the production stack; fixtures in conftest.py."""

from testing.processes import Stack


def base_url(stack: Stack, name: str) -> str:
    """The HTTP root of the stack's daphne process `name`."""
    return f"http://127.0.0.1:{stack[name].port}"
