"""What every command handler gets: parsed arguments, the cloud, clients built lazily, progress, warnings."""

import sys
from dataclasses import dataclass, field
from typing import List, Optional

from . import cloud as cloudmod
from .credentials import ca_bundle, check, default_credential
from .progress import Progress


@dataclass
class Result:
    """A command's answer: rows for -o/--query, the table columns (header, key), and the exit code."""

    rows: List[dict]
    columns: List[tuple] = field(default_factory=list)
    exit_code: int = 0
    summary: Optional[str] = None  # one line for stderr after the output (counts)


class Context:
    def __init__(self, args, credential=None, stderr=None):
        self.args = args
        self.stderr = stderr or sys.stderr
        self._credential = credential
        self._cloud = None
        self._factory = None

    @property
    def cloud(self):
        if self._cloud is None:
            self._cloud = cloudmod.resolve(self.args.arm_endpoint, self.args.cloud, verify=ca_bundle() or True)
        return self._cloud

    @property
    def factory(self):
        if self._factory is None:
            from .clients import ClientFactory

            cred = self._credential or default_credential(self.cloud)
            check(cred, self.cloud)
            interval = 5.0 if self.args.polling_interval is None else self.args.polling_interval
            self._factory = ClientFactory(self.cloud, cred, polling_interval=interval)
        return self._factory

    def warn(self, message):
        self.stderr.write(f"WARNING: {message}\n")
        self.stderr.flush()

    def progress(self, label, total=None):
        return Progress(label, total, stream=self.stderr, enabled=not self.args.no_progress)
