"""The emulated estate: subscriptions, VMs with extensions, vaults, policies, protected items, jobs.

Plain objects guarded by one lock (`Estate.lock`); the route handlers turn them into REST shapes.
Names compare case-insensitively everywhere, as in ARM, so every index is keyed by lower-case names.
"""

import datetime
import threading
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from vmsnapkit import backupnames

SNAPSHOT_PUBLISHER = "Microsoft.Azure.RecoveryServices"
SNAPSHOT_TYPE = "VMSnapshotLinux"
TENANT_ID = "72f988bf-0000-4000-8000-00000000c0de"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if ts else None


@dataclass
class Extension:
    name: str
    publisher: str = SNAPSHOT_PUBLISHER
    type: str = SNAPSHOT_TYPE
    version: str = "1.9"
    provisioning_state: str = "Succeeded"
    auto_upgrade: bool = True
    # instance view, as the guest agent reported it
    status_code: str = "ProvisioningState/succeeded"
    status_message: str = "Enable succeeded"


@dataclass
class VM:
    subscription: str
    resource_group: str
    name: str
    location: str = "westus"
    tags: Dict[str, str] = field(default_factory=dict)
    extensions: List[Extension] = field(default_factory=list)
    vm_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    power_state: str = "running"
    fail_get: bool = False  # every GET on this VM answers 500 (partial-failure knob)
    fail_enable: bool = False  # enabling protection ends in a Failed operation and job
    fail_backup: bool = False  # an on-demand backup ends Failed
    discovered: bool = True  # visible as a protectable item only after a container refresh when False

    @property
    def id(self):
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    @property
    def container_name(self):
        return backupnames.container_name(self.resource_group, self.name)

    @property
    def item_name(self):
        return backupnames.item_name(self.resource_group, self.name)


@dataclass
class Policy:
    name: str
    properties: dict
    extra_count: int = 0  # protected VMs counted on top of the estate's items (a nearly full policy)


@dataclass
class ProtectedItem:
    vm: VM
    policy_id: str
    protection_state: str = "Protected"
    health_status: str = "Passed"
    last_backup_status: str = "Completed"
    last_backup_time: Optional[datetime.datetime] = None
    created: datetime.datetime = field(default_factory=utcnow)


@dataclass
class Job:
    id: str
    vm_name: str
    operation: str
    status: str
    start: datetime.datetime
    end: Optional[datetime.datetime] = None
    error: Optional[str] = None


@dataclass
class Operation:
    """A backup-service async operation: InProgress `remaining` more times, then `final`."""

    id: str
    job_id: str
    remaining: int
    final: str = "Succeeded"
    error: Optional[dict] = None


@dataclass
class Vault:
    subscription: str
    resource_group: str
    name: str
    location: str = "westus"
    forbidden: bool = False  # every call on this vault answers 403 AuthorizationFailed
    policies: Dict[str, Policy] = field(default_factory=dict)
    items: Dict[str, ProtectedItem] = field(default_factory=dict)  # key: lower-case VM id
    jobs: Dict[str, Job] = field(default_factory=dict)
    operations: Dict[str, Operation] = field(default_factory=dict)
    refresh_ops: Dict[str, int] = field(default_factory=dict)  # op id -> remaining 202 answers

    @property
    def id(self):
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.name}"
        )

    def policy_id(self, name):
        return f"{self.id}/backupPolicies/{name}"

    def policy_count(self, policy_name):
        pid = self.policy_id(policy_name).lower()
        pol = self.policies.get(policy_name.lower())
        extra = pol.extra_count if pol else 0
        return extra + sum(1 for it in self.items.values() if it.policy_id.lower() == pid)

    def add_job(self, vm_name, operation, status, error=None):
        now = utcnow()
        job = Job(
            id=str(uuid.uuid4()),
            vm_name=vm_name,
            operation=operation,
            status=status,
            start=now,
            end=None if status == "InProgress" else now,
            error=error,
        )
        self.jobs[job.id] = job
        return job


def default_policy_properties():
    """An AzureIaasVM daily policy, shaped after ProtectionPolicies_Get.json."""
    return {
        "backupManagementType": "AzureIaasVM",
        "schedulePolicy": {
            "schedulePolicyType": "SimpleSchedulePolicy",
            "scheduleRunFrequency": "Daily",
            "scheduleRunTimes": ["2018-01-24T02:00:00Z"],
            "scheduleWeeklyFrequency": 0,
        },
        "retentionPolicy": {
            "retentionPolicyType": "LongTermRetentionPolicy",
            "dailySchedule": {
                "retentionTimes": ["2018-01-24T02:00:00Z"],
                "retentionDuration": {"count": 30, "durationType": "Days"},
            },
        },
        "instantRpRetentionRangeInDays": 2,
        "timeZone": "UTC",
        "protectedItemsCount": 0,
    }


class Estate:
    """Everything the emulator knows, with case-insensitive indexes."""

    def __init__(self, tenant_id=TENANT_ID):
        self.lock = threading.RLock()
        self.tenant_id = tenant_id
        self.subscriptions: Dict[str, str] = {}  # lower id -> display name
        self.vms: Dict[str, VM] = {}  # lower VM id -> VM
        self.vaults: Dict[str, Vault] = {}  # lower vault id -> Vault
        self.expect: Dict[str, list] = {}  # what the fleet generator planted, for assertions
        self.generation = 0  # bumped by every write request: invalidates cached Resource Graph rows

    # -- building -------------------------------------------------------------------------------------
    def add_subscription(self, sub_id, display_name=None):
        self.subscriptions[sub_id.lower()] = display_name or f"Subscription {sub_id[:8]}"

    def add_vm(self, vm):
        self.vms[vm.id.lower()] = vm
        return vm

    def add_vault(self, vault, policies=("DefaultPolicy",)):
        for p in policies:
            vault.policies.setdefault(p.lower(), Policy(name=p, properties=default_policy_properties()))
        self.vaults[vault.id.lower()] = vault
        return vault

    def protect(self, vault, vm, policy="DefaultPolicy", **kw):
        item = ProtectedItem(vm=vm, policy_id=vault.policy_id(policy), **kw)
        vault.items[vm.id.lower()] = item
        return item

    # -- lookups --------------------------------------------------------------------------------------
    def vm(self, sub, rg, name) -> Optional[VM]:
        return self.vms.get(
            f"/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.compute/virtualmachines/{name}".lower()
        )

    def vault(self, sub, rg, name) -> Optional[Vault]:
        return self.vaults.get(
            f"/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.recoveryservices/vaults/{name}".lower()
        )

    def vms_in(self, sub, rg=None):
        sub = sub.lower()
        out = [
            v
            for v in self.vms.values()
            if v.subscription.lower() == sub and (rg is None or v.resource_group.lower() == rg.lower())
        ]
        out.sort(key=lambda v: v.id.lower())
        return out

    def protecting_vault(self, vm) -> Optional[Vault]:
        key = vm.id.lower()
        for vault in self.vaults.values():
            if key in vault.items:
                return vault
        return None

    def summary(self):
        with self.lock:
            return {
                "subscriptions": sorted(self.subscriptions),
                "vms": len(self.vms),
                "vaults": {
                    v.id: {
                        "protectedItems": len(v.items),
                        "jobs": len(v.jobs),
                        "policies": {p.name: v.policy_count(p.name) for p in v.policies.values()},
                    }
                    for v in self.vaults.values()
                },
                "expect": self.expect,
            }
