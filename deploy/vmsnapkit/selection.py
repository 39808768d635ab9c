"""Which VMs a command works on: subscriptions, resource groups, explicit VM ids (or a file), tags."""

import re
from dataclasses import dataclass, field
from typing import Dict, List

from .errors import EXIT_NOT_FOUND, EXIT_USAGE, KitError, translate

VM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
SUBSCRIPTION_API = "2022-12-01"


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


def parse_vm_id(text, where="--vm-ids"):
    m = VM_ID.match(text.strip())
    if not m:
        raise KitError(
            f"{where}: {text.strip()!r} is not a VM resource id "
            "(/subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>)",
            EXIT_USAGE,
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
    sel = Selection(
        subscriptions=list(dict.fromkeys(args.subscription or [])),
        resource_groups=list(args.resource_group or []),
    )
    for text in args.vm_ids or []:
        for part in text.split(","):
            if part.strip():
                sel.vms.append(parse_vm_id(part))
    if args.vms_file:
        try:
            with open(args.vms_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise KitError(f"--vms-file: cannot read {args.vms_file}: {exc.strerror}", EXIT_USAGE) from None
        for n, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                sel.vms.append(parse_vm_id(line, f"--vms-file line {n}"))
    for tag in args.tag or []:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise KitError(f"--tag {tag!r}: expected KEY=VALUE", EXIT_USAGE)
        sel.tags[key] = value
    for ref in sel.vms:
        if ref.subscription.lower() not in {s.lower() for s in sel.subscriptions}:
            sel.subscriptions.append(ref.subscription)
    return sel


def resolve_subscriptions(factory, selection):
    """Check that every named subscription exists (else a clear error), or list the visible ones."""
    from azure.core.rest import HttpRequest

    client = factory.compute("00000000-0000-0000-0000-000000000000")
    try:
        if not selection.subscriptions:
            resp = client.send_request(HttpRequest("GET", f"/subscriptions?api-version={SUBSCRIPTION_API}"))
            resp.raise_for_status()
            subs = [
                s["subscriptionId"]
                for s in resp.json().get("value", [])
                if s.get("state", "Enabled") == "Enabled"
            ]
            if not subs:
                raise KitError(
                    "the signed-in identity sees no enabled subscription; pass --subscription", EXIT_NOT_FOUND
                )
            selection.subscriptions = subs
            return selection
        for sub in selection.subscriptions:
            resp = client.send_request(
                HttpRequest("GET", f"/subscriptions/{sub}?api-version={SUBSCRIPTION_API}")
            )
            if resp.status_code == 404:
                raise KitError(
                    f"unknown subscription {sub!r}: it does not exist or the signed-in identity "
                    "cannot see it",
                    EXIT_NOT_FOUND,
                )
            resp.raise_for_status()
    except KitError:
        raise
    except Exception as exc:
        err = translate(exc, "subscriptions")
        if err is None:
            raise
        raise err from None
    finally:
        client.close()
    return selection
