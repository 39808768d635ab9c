"""A complete, valid snapshot job as Azure Backup sends it, built against a running Azurite.

Tests, benchmarks and the demo start from `SnapshotVM(...).settings(seq)` and break one thing at a time.
"""

import base64
import json
import os
import time
import uuid

from .handler import AgentSim
from .secretscan import field_secrets, sas_signatures
from .trusteddir import trusted_twin

TICKS_AT_UNIX_EPOCH = 621355968000000000


def ticks(unix_seconds=None):
    t = time.time() if unix_seconds is None else unix_seconds
    return str(int(t * 1e7) + TICKS_AT_UNIX_EPOCH)


def b64json(doc):
    return base64.b64encode(json.dumps(doc).encode()).decode()


# Where a test's runtime finds "the WireServer" unless a test starts a host service: a loopback port nothing
# listens on, so presnapshot is refused at once (code 555) and nothing ever leaves the machine.
NO_HOST_ENDPOINT = "http://127.0.0.1:9"


def hook_dir(work):
    """The HookDir of a test VM in `work`: the runtime trusts scripts only below root-owned directories
    that nobody else can write, all the way up to / (so not below /tmp): see harness.trusteddir."""
    return os.path.join(trusted_twin(work), "etc-azure", "hooks.d")


def script_config_path(work):
    return os.path.join(trusted_twin(work), "etc-azure", "VMSnapshotScriptPluginConfig.json")


def workload_config_path(work):
    """workload.conf of a test VM: in the trusted twin too (it names the client binary run as root)."""
    return os.path.join(trusted_twin(work), "etc-azure", "workload.conf")


def safe_config(path, work, fsfreeze=False, include=None, extra="", host_endpoint=NO_HOST_ENDPOINT):
    """A runtime configuration that can never freeze a machine filesystem and keeps every path in `work`."""
    lines = ["[SnapshotThread]", "fsfreeze = %s" % ("true" if fsfreeze else "false"), "timeout = 20"]
    if fsfreeze and not include:  # a blank MountsToInclude means every eligible file system: never here
        raise ValueError("refusing a freezing config without MountsToInclude naming the test's own mounts")
    if include:
        lines.append("MountsToInclude = %s" % ",".join(include))
    lines += [
        "[vmsnapshot]",
        "ScriptConfigPath = %s" % script_config_path(work),
        "HookDir = %s" % hook_dir(work),
        "SafeFreezeLockFile = %s" % os.path.join(work, "etc-azure", "SafeFreezeLockFile"),
        "MachineIdentityFile = %s" % os.path.join(work, "etc-azure", "machine_identity"),
        "WaagentConf = %s" % os.path.join(work, "etc-azure", "waagent.conf"),
        "HostEndpoint = %s" % host_endpoint,
        "HostTimeoutSeconds = 5",
        "HostingEnvironmentConfig = %s" % os.path.join(work, "etc-azure", "HostingEnvironmentConfig.xml"),
        "WorkloadConfigPath = %s" % workload_config_path(work),
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    return path


class SnapshotVM(object):
    """A fake VM's disks in Azurite plus an agent-style handler directory with its certificate."""

    def __init__(
        self, work, azurite, tenant, zip_path, disks=2, python=None, container=None, fsfreeze=False, include=None
    ):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.azurite = azurite
        self.tenant = tenant
        self.container = container or ("vm%08x" % (abs(hash(work)) % 16**8))
        azurite.create_container(self.container)
        self.disk_names = ["disk%d.vhd" % i for i in range(disks)]
        for name in self.disk_names:
            azurite.create_page_blob(self.container, name, 1 << 30)
        azurite.create_page_blob(self.container, "status.json", 0)
        self._uris = None
        # Host-path secrets every job carries (a fake token; fake ADE settings for host services to hand out).
        self.task_token = "kit-snapshotTaskToken-%s" % uuid.uuid4().hex
        self.disk_encryption_settings = "kit-fake-DiskEncryptionSettings-%s" % uuid.uuid4().hex
        self.status_uri = azurite.blob_sas_uri(self.container, "status.json")
        self.log_uri = azurite.blob_sas_uri(self.container, "job.log", "racw")
        self.config = safe_config(os.path.join(work, "vmbackup.conf"), work, fsfreeze, include)
        self.agent = AgentSim(os.path.join(work, "agent"), zip_path, python=python, config_path=self.config)
        self.agent.install_files()
        tenant.install(self.agent.lib)

    def disk_uris(self):
        if self._uris is None:
            self._uris = [self.azurite.blob_sas_uri(self.container, n) for n in self.disk_names]
        return list(self._uris)

    def secrets(self, *documents):
        """Every secret this VM's settings carry (SAS signatures, the snapshotTaskToken, the ADE settings),
        plus those in `documents` (settings a test built itself): must never appear on disk or in logs."""
        found = [self.task_token, self.disk_encryption_settings]
        for doc in documents:
            found += field_secrets(doc)
        return sas_signatures(self.disk_uris() + [self.status_uri, self.log_uri]) + sorted(set(found))

    def public(self, seq=0, **overrides):
        pub = {
            "locale": "en-us",
            "taskId": "task-%s-%d" % (self.container, seq),
            "commandToExecute": "snapshot",
            "commandStartTimeUTCTicks": ticks(),
            "vmType": "microsoft.compute/virtualmachines",
            "objectStr": b64json(
                {
                    "backupMetadata": [
                        {"Key": "BackupTaskId", "Value": "task-%d" % seq},
                        {"Key": "Origin", "Value": "kit-tests"},
                    ],
                    "includedDisks": {"dataDiskLunList": [0], "isOSDiskIncluded": True},
                    "snapshotTaskToken": self.task_token,
                }
            ),
        }
        pub.update(overrides)
        return {k: v for k, v in pub.items() if v is not None}

    def private(self, **overrides):
        priv = {
            "objectStr": b64json({"blobSASUri": self.disk_uris()}),
            "statusBlobUri": self.status_uri,
            "logsBlobUri": self.log_uri,
        }
        priv.update(overrides)
        return {k: v for k, v in priv.items() if v is not None}

    def write(self, seq=0, public=None, private=None, cipher="-des3"):
        public = self.public(seq) if public is None else public
        private = self.private() if private is None else private
        protected = self.tenant.encrypt(json.dumps(private), cipher) if private is not None else None
        return self.agent.write_settings(seq, public, protected, self.tenant.thumbprint)

    def snapshots(self):
        return self.azurite.list_snapshots(self.container)

    def job_log(self, until, timeout=10.0):
        """The job's log blob once it contains `until` (it is uploaded after the status), or as it is."""
        deadline, text = time.monotonic() + timeout, ""
        while until not in text and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                text = self.azurite.read_blob(self.container, "job.log").decode()
            except RuntimeError:
                pass
        return text

    def status_blob(self):
        raw = self.azurite.read_blob(self.container, "status.json").decode().rstrip()
        return json.loads(raw)

    def final_status_blob(self, timeout=15):
        """The status blob once it is no longer 'transitioning' (the job uploads it just after writing
        the local status, so a test that saw the local status final must wait for it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                doc = self.status_blob()
            except ValueError:
                doc = None  # read mid-upload
            if (doc and doc[0]["status"]["status"] != "transitioning") or time.monotonic() > deadline:
                return doc
            time.sleep(0.05)


def freeze_plan(vm):
    """The freeze plan of `vm`'s installed runtime (its offline `diagnose`): whatever may freeze checks it first."""
    proc = vm.agent.handle("diagnose", "--json", "--offline")
    return json.loads(proc.stdout)["freeze_plan"]


def planned_mounts(vm):
    """The mounts `vm`'s runtime would freeze, sorted: a freezing benchmark checks they are exactly its own."""
    return sorted(freeze_plan(vm)["would_freeze"])


def wait_for(predicate, timeout=30):
    """Poll `predicate` every 10 ms until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met within %ss" % timeout)
