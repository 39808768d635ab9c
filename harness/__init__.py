"""Shared helpers for tests, benchmarks and the `make run` demo: real components, never mocks.

Nothing here is part of the shipped runtime (extension/) or the fleet tool (deploy/).
"""
