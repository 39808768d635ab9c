"""Argument groups, declared once and shared by the commands that need them (like azure-cli's _params.py)."""

from .cloud import PUBLIC_CLOUDS
from .output import FORMATS


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
        type=_positive,
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
    g.add_argument(
        "--resource-group", "-g", action="append", metavar="NAME", help="resource group (repeatable)"
    )
    g.add_argument("--vm-ids", "--ids", action="append", metavar="ID[,ID...]", help="full VM resource ids")
    g.add_argument("--vms-file", metavar="FILE", help="file with one VM resource id per line (# comments)")
    g.add_argument(
        "--tag", action="append", metavar="KEY=VALUE", help="only VMs carrying this tag (repeatable)"
    )


def extension_list_arguments(p):
    p.add_argument(
        "--all", action="store_true", help="list every extension, not only VMSnapshot/VMSnapshotLinux"
    )


def verify_arguments(p):
    g = p.add_argument_group("rules")
    g.add_argument(
        "--min-version", metavar="X.Y", help="minimum typeHandlerVersion of the snapshot extension"
    )
    g.add_argument(
        "--max-backup-age", metavar="DURATION", help="last successful backup at most this old (26h, 2d)"
    )
    g.add_argument("--allow-unprotected", action="store_true", help="do not fail VMs that no vault protects")
    p.add_argument("--report", metavar="FILE.html|FILE.md", help="also write a self-contained report page")
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
        help="record progress here; a re-run with the same file "
        "continues an interrupted run without redoing work",
    )


def jobs_arguments(p):
    p.add_argument(
        "--since", default="7d", metavar="DURATION", help="jobs started within this window (default 7d)"
    )


def jobs_filter_arguments(p):
    p.add_argument("--operation", help="only this operation (Backup, ConfigureBackup, ...)")
    p.add_argument("--status", help="only this status (Completed, Failed, InProgress, ...)")


def _positive(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
