"""Argument groups, declared once and shared by the commands that need them (like azure-cli's _params.py).

Values are parsed and checked by argparse types here, so bad input stops the command before any Azure call,
with argparse's message naming the flag (`argument --since: ...`) and the usage exit code.
"""

import argparse
import datetime
import os
import re
from dataclasses import dataclass

from .cloud import PUBLIC_CLOUDS
from .output import FORMATS
from .selection import parse_vm_id

REPORT_SUFFIXES = (".html", ".htm", ".md")
_DURATION = re.compile(r"\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*")


# -- types ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Duration:
    """A duration as the user wrote it (shown back in messages) and its value."""

    text: str
    delta: datetime.timedelta

    def __str__(self):
        return self.text


def duration(text):
    """'26h', '90m', '2d', '1d12h' -> Duration."""
    m = _DURATION.fullmatch(text or "")
    if not text or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use one such as 26h, 90m, 2d or 1d12h")
    d, h, mi = (float(x) if x else 0.0 for x in m.groups())
    return Duration(text, datetime.timedelta(days=d, hours=h, minutes=mi))


def tag(text):
    """'KEY=VALUE' -> (key, value); the value may be empty or contain '='."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def vm_ids(text):
    """'ID[,ID...]' -> [VmRef, ...] (the flag extends one list)."""
    try:
        return [parse_vm_id(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def report_path(text):
    """A report file name ending in .html/.htm/.md, in a directory that exists and is writable."""
    if not text.lower().endswith(REPORT_SUFFIXES):
        raise argparse.ArgumentTypeError(f"{text}: the file name must end in .html or .md")
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: directory {directory} does not exist or is not writable")
    return text


def positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# -- groups -----------------------------------------------------------------------------------------


def global_arguments(p):
    g = p.add_argument_group("global")
    g.add_argument("-o", "--output", choices=FORMATS, default="table", help="output format (default: table)")
    g.add_argument("--query", help="JMESPath query applied to the result, as in az")
    g.add_argument(
        "--cloud",
        choices=list(PUBLIC_CLOUDS),
        help="public cloud (default: env VMSNAPKIT_CLOUD, the active az CLI cloud, else AzureCloud)",
    )
    g.add_argument(
        "--arm-endpoint",
        metavar="URL",
        help="custom ARM endpoint (Azure Stack Hub, emulator); "
        "its metadata is read from URL/metadata/endpoints (env: VMSNAPKIT_ARM_ENDPOINT)",
    )
    g.add_argument(
        "--source",
        choices=("auto", "resourcegraph", "arm"),
        default="auto",
        help="where fleet state comes from: Resource Graph (auto, falls back to ARM) or direct ARM calls",
    )
    g.add_argument(
        "--max-concurrency",
        type=positive,
        default=32,
        metavar="N",
        help="requests in flight at most (lowered automatically as ARM's budget runs low; default 32)",
    )
    g.add_argument(
        "--polling-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="long-running-operation poll interval when Azure sends no Retry-After",
    )
    g.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    g.add_argument("--debug", action="store_true", help="show the Python traceback of unexpected errors")


def selection_arguments(p):
    g = p.add_argument_group("VM selection")
    g.add_argument(
        "--subscription",
        "-s",
        action="append",
        metavar="ID",
        help="subscription id (repeatable; default: every subscription the identity sees)",
    )
    g.add_argument("--resource-group", "-g", action="append", metavar="NAME", help="resource group (repeatable)")
    g.add_argument("--vm-ids", "--ids", type=vm_ids, action="extend", metavar="ID[,ID...]", help="full VM resource ids")
    g.add_argument("--vms-file", metavar="FILE", help="file with one VM resource id per line (# comments)")
    g.add_argument(
        "--tag", type=tag, action="append", metavar="KEY=VALUE", help="only VMs carrying this tag (repeatable)"
    )


def extension_list_arguments(p):
    p.add_argument("--all", action="store_true", help="list every extension, not only VMSnapshot/VMSnapshotLinux")


def verify_arguments(p):
    g = p.add_argument_group("rules")
    g.add_argument("--min-version", metavar="X.Y", help="minimum typeHandlerVersion of the snapshot extension")
    g.add_argument(
        "--max-backup-age",
        type=duration,
        metavar="DURATION",
        help="last successful backup at most this old (26h, 2d)",
    )
    g.add_argument("--allow-unprotected", action="store_true", help="do not fail VMs that no vault protects")
    p.add_argument(
        "--report", type=report_path, metavar="FILE.html|FILE.md", help="also write a self-contained report page"
    )
    p.add_argument(
        "--locale",
        metavar="LANG",
        help="language of the report: en-US or zh-CN (default: env VMSNAPKIT_LOCALE, LC_ALL, LC_MESSAGES, LANG)",
    )


def enable_arguments(p):
    g = p.add_argument_group("backup")
    g.add_argument(
        "--vault",
        help="vault name (with --vault-resource-group) or full id; default: the vault in "
        "each VM's subscription and region",
    )
    g.add_argument("--vault-resource-group", metavar="NAME")
    g.add_argument("--vault-subscription", metavar="ID")
    g.add_argument(
        "--policy",
        default="DefaultPolicy",
        help="AzureIaasVM policy (shards <policy>-2, -3... are "
        "created when it would exceed 1000 VMs; default DefaultPolicy)",
    )
    g.add_argument("--dry-run", action="store_true", help="show what would be done; write nothing")
    g.add_argument(
        "--resume-file",
        metavar="FILE",
        help="record progress here; a re-run with the same file continues an interrupted run without redoing work",
    )


def jobs_arguments(p):
    p.add_argument(
        "--since",
        type=duration,
        default="7d",
        metavar="DURATION",
        help="jobs started within this window (default 7d)",
    )


def jobs_filter_arguments(p):
    p.add_argument("--operation", help="only this operation (Backup, ConfigureBackup, ...)")
    p.add_argument("--status", help="only this status (Completed, Failed, InProgress, ...)")
