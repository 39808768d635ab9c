"""The resume file of `backup enable`: one JSON line per finished step, flushed and fsynced as it happens,
so a run killed at any moment (even SIGKILL) is continued by the next run without redoing work."""

import json
import os

from .errors import EXIT_USAGE, KitError


class ResumeFile:
    def __init__(self, path):
        self.path = path
        self.enabled = {}  # vm key -> {"vault": ..., "policy": ...}
        self.refreshed = set()  # vault ids (lower) whose containers were refreshed
        self._fh = None
        self._load()

    def _load(self):
        if not os.path.exists(self.path):
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise KitError(f"--resume-file {self.path}: cannot read it: {exc.strerror}", EXIT_USAGE) from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                if n == len(lines):  # the line being written when the previous run died
                    continue
                raise KitError(
                    f"--resume-file {self.path} line {n} is not a resume record; is this the right file?",
                    EXIT_USAGE,
                ) from None
            if entry.get("event") == "enabled":
                self.enabled[entry["vm"]] = entry
            elif entry.get("event") == "refreshed":
                self.refreshed.add(entry["vault"].lower())

    def _write(self, entry):
        if self._fh is None:
            try:
                self._fh = open(self.path, "a", encoding="utf-8")
            except OSError as exc:
                raise KitError(f"--resume-file {self.path}: cannot write it: {exc.strerror}", EXIT_USAGE) from None
        self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def record_refresh(self, vault_id):
        self.refreshed.add(vault_id.lower())
        self._write({"event": "refreshed", "vault": vault_id})

    def record_enabled(self, vm_key, vault_id, policy):
        self.enabled[vm_key] = {"vault": vault_id, "policy": policy}
        self._write({"event": "enabled", "vm": vm_key, "vault": vault_id, "policy": policy})

    def record_failed(self, vm_key, error):
        self._write({"event": "failed", "vm": vm_key, "error": error})

    def close(self):
        if self._fh:
            self._fh.close()
            self._fh = None
