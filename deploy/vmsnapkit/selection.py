"""Which VMs a command works on: subscriptions, resource groups, explicit VM ids (or a file), tags."""

import re
from dataclasses import dataclass, field
from typing import Dict, List

from .errors import EXIT_NOT_FOUND, EXIT_USAGE, KitError, translated
from .sdkmodels import lookup

VM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)


@dataclass
class VmRef:
    subscription: str
    resource_group: str
    name: str

    @property
    def id(self):
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    @property
    def key(self):
        return self.id.lower()


def parse_vm_id(text):
    """A VM resource id -> VmRef; ValueError naming the text otherwise."""
    m = VM_ID.match(text.strip())
    if not m:
        raise ValueError(
            f"{text.strip()!r} is not a VM resource id "
            "(/subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>)"
        )
    return VmRef(m["sub"], m["rg"], m["name"])


@dataclass
class Selection:
    subscriptions: List[str] = field(default_factory=list)
    resource_groups: List[str] = field(default_factory=list)
    vms: List[VmRef] = field(default_factory=list)
    tags: Dict[str, str] = field(default_factory=dict)

    def matches(self, vm_id, resource_group, tags):
        if self.vms and vm_id.lower() not in {v.key for v in self.vms}:
            return False
        if self.resource_groups and resource_group.lower() not in {g.lower() for g in self.resource_groups}:
            return False
        lowered = {str(k).lower(): str(v).lower() for k, v in (tags or {}).items()}
        return all(lowered.get(k.lower()) == v.lower() for k, v in self.tags.items())

    def describe(self):
        parts = [f"{len(self.subscriptions)} subscription(s)"]
        if self.resource_groups:
            parts.append("resource groups " + ", ".join(self.resource_groups))
        if self.vms:
            parts.append(f"{len(self.vms)} listed VM(s)")
        if self.tags:
            parts.append("tags " + ", ".join(f"{k}={v}" for k, v in self.tags.items()))
        return "; ".join(parts)


def from_args(args):
    """The Selection of the parsed arguments (--vm-ids and --tag arrive parsed; --vms-file is read here)."""
    sel = Selection(
        subscriptions=list(dict.fromkeys(args.subscription or [])),
        resource_groups=list(args.resource_group or []),
        vms=list(args.vm_ids or []),
        tags=dict(args.tag or []),
    )
    if args.vms_file:
        sel.vms += _read_vms_file(args.vms_file)
    for ref in sel.vms:
        if ref.subscription.lower() not in {s.lower() for s in sel.subscriptions}:
            sel.subscriptions.append(ref.subscription)
    return sel


def _read_vms_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise KitError(f"--vms-file: cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    refs = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                refs.append(parse_vm_id(line))
            except ValueError as exc:
                raise KitError(f"--vms-file line {n}: {exc}", EXIT_USAGE) from None
    return refs


def resolve_subscriptions(factory, selection):
    """Check that every named subscription exists (else a clear error), or list the enabled ones the
    identity sees; through the Subscriptions client (tenant-level, no subscription id needed)."""
    from azure.core.exceptions import ResourceNotFoundError

    client = factory.subscriptions()
    try:
        with translated("subscriptions"):
            if not selection.subscriptions:
                selection.subscriptions = [
                    lookup(s, "subscriptionId")
                    for s in client.subscriptions.list()
                    if lookup(s, "state", default="Enabled") == "Enabled"
                ]
                if not selection.subscriptions:
                    raise KitError(
                        "the signed-in identity sees no enabled subscription; pass --subscription",
                        EXIT_NOT_FOUND,
                    )
                return selection
            for sub in selection.subscriptions:
                try:
                    client.subscriptions.get(sub)
                except ResourceNotFoundError:
                    raise KitError(
                        f"unknown subscription {sub!r}: it does not exist or the signed-in identity cannot see it",
                        EXIT_NOT_FOUND,
                    ) from None
    finally:
        client.close()
    return selection
