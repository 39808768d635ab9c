"""vmsnapshot: the in-guest runtime of the VM Snapshot Linux extension.

Standard library only; runs on Python 3.6 and later. Entry point: `python3 -m vmsnapshot <command>`.
"""
