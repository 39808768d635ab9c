"""Every command in one table: its words, handler (imported lazily, as azure-cli's command loaders do),
help text and argument groups. The parser in cli.py is built from this table."""

from dataclasses import dataclass
from typing import Callable, Tuple

from . import arguments


@dataclass(frozen=True)
class Command:
    words: Tuple[str, ...]
    handler: str  # "module:function" under vmsnapkit
    help: str
    argument_groups: Tuple[Callable, ...]


COMMANDS = (
    Command(
        ("extensions", "list"),
        "fleet:extensions_list",
        "list the VM snapshot extension (every extension with --all) across VMs, like `az vm extension list`",
        (arguments.selection_arguments, arguments.extension_list_arguments),
    ),
    Command(
        ("verify",),
        "verify:run",
        "check every VM: snapshot extension healthy and backup protected and recent; exit 0 only if all pass",
        (arguments.selection_arguments, arguments.verify_arguments),
    ),
    Command(
        ("backup", "enable"),
        "enable:run",
        "protect many VMs at once (one refresh and listing per vault, policy sharding, resumable)",
        (arguments.selection_arguments, arguments.enable_arguments),
    ),
    Command(
        ("backup", "status"),
        "backup:status",
        "protection state, last backup and last job per VM",
        (arguments.selection_arguments, arguments.jobs_arguments),
    ),
    Command(
        ("backup", "jobs"),
        "backup:jobs",
        "recent backup jobs per VM",
        (arguments.selection_arguments, arguments.jobs_arguments, arguments.jobs_filter_arguments),
    ),
)

GROUP_HELP = {"extensions": "VM extension inventory", "backup": "Azure Backup for VMs"}
