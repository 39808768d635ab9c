"""The real az CLI pointed at the loopback ARM emulator, as management-reference section 5.3 describes.

A private AZURE_CONFIG_DIR, the emulator registered as a custom cloud with only its ARM endpoint (az
discovers the rest from <endpoint>/metadata/endpoints, the issue 9 path), `az login --identity` through
the emulator's managed-identity endpoint, and the emulator's CA in REQUESTS_CA_BUNDLE. Used by
tests/templates and bench/enable_backup.py.

    az = AzCli.find()                       # None when `make setup-azcli` has not run
    session = az.session(emu, tmp_dir)      # registers the cloud and logs in
    session.run("vm", "list", "-o", "json")
"""

import os
import shutil
import subprocess
from typing import Optional

CLOUD_NAME = "KitLoopCloud"


def default_az_path() -> str:
    cache = os.environ.get("KIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vmsnapshot-kit")
    return os.environ.get("AZ_CLI") or os.path.join(cache, "azcli", "bin", "az")


class AzCli:
    def __init__(self, path: str):
        self.path = path

    @classmethod
    def find(cls) -> Optional["AzCli"]:
        path = default_az_path()
        return cls(path) if os.access(path, os.X_OK) else None

    def session(self, emu, workdir: str) -> "AzSession":
        return AzSession(self, emu, workdir).login()


class AzSession:
    """An az profile of its own, logged in to the emulator; `env` also serves scripts that call az."""

    def __init__(self, az: AzCli, emu, workdir: str):
        self.az, self.emu = az, emu
        self.config_dir = os.path.join(workdir, "azconfig")
        os.makedirs(self.config_dir, exist_ok=True)
        self.env = emu.client_env()
        self.env.update(
            {
                "AZURE_CONFIG_DIR": self.config_dir,
                "AZ": az.path,  # what the kit's scripts call
                "AZURE_CORE_NO_COLOR": "1",
                "AZURE_CORE_ONLY_SHOW_ERRORS": "1",
                "AZURE_CORE_SURVEY_MESSAGE": "no",
                "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
            }
        )
        self.env["PATH"] = os.path.dirname(az.path) + os.pathsep + self.env.get("PATH", "")

    def run(self, *args, check=True, timeout=120, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.az.path, *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and proc.returncode != 0:
            raise RuntimeError("az %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr[-2000:]))
        return proc

    def login(self) -> "AzSession":
        self.run("cloud", "register", "-n", CLOUD_NAME, "--endpoint-resource-manager", self.emu.url + "/")
        self.run("cloud", "set", "-n", CLOUD_NAME)
        self.run("login", "--identity", "-o", "none")
        return self

    def cleanup(self):
        shutil.rmtree(self.config_dir, ignore_errors=True)
