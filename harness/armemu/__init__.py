"""Loopback Azure Resource Manager emulator shared by tests, benchmarks and the `make run` demo.

    from harness.armemu import ArmEmulator, generate_fleet
    with ArmEmulator(generate_fleet(vms=500, subscriptions=2), latency_ms=20) as emu:
        emu.url, emu.ca_file, emu.client_env(), emu.requests(method="PUT", path="protectedItems")

Standalone: `python -m harness.armemu --port 18443 --vms 200` (prints one JSON line with url and CA file).
"""

from .fleet import generate_fleet, subscription_id
from .router import Request, Response, Router, arm_error, json_response, paged
from .server import ArmEmulator, Knobs
from .state import VM, Estate, Extension, Job, Policy, ProtectedItem, Vault

__all__ = [
    "ArmEmulator",
    "Knobs",
    "generate_fleet",
    "subscription_id",
    "Estate",
    "VM",
    "Vault",
    "Extension",
    "Policy",
    "ProtectedItem",
    "Job",
    "Router",
    "Request",
    "Response",
    "arm_error",
    "json_response",
    "paged",
]
