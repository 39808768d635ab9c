"""Fleet reads shared by the commands: the VM inventory and protection state, from Resource Graph by
default (falling back to direct ARM when Resource Graph cannot serve), and `extensions list`."""

from azure.core.exceptions import HttpResponseError

from . import inventory, protection
from .context import Result
from .errors import EXIT_FAILED, error_code
from .selection import from_args, resolve_subscriptions

EXTENSION_COLUMNS = [
    ("Name", "name"),
    ("ProvisioningState", "provisioningState"),
    ("Publisher", "publisher"),
    ("Version", "typeHandlerVersion"),
    ("AutoUpgradeMinorVersion", "autoUpgradeMinorVersion"),
    ("VM", "vm"),
    ("ResourceGroup", "resourceGroup"),
]


def selection(ctx):
    sel = from_args(ctx.args)
    return resolve_subscriptions(ctx.factory, sel)


def _use_graph(ctx):
    return ctx.args.source in ("auto", "resourcegraph")


def _graph_or_arm(ctx, graph_call, arm_call, what):
    """Run the Resource Graph variant; on `auto`, fall back to ARM when Resource Graph refuses to serve."""
    if not _use_graph(ctx):
        return arm_call()
    try:
        return graph_call()
    except HttpResponseError as exc:
        # Only an explicit refusal of Resource Graph falls back (not served in this cloud, no access,
        # bad request); authentication problems and network errors are the same for both paths.
        if ctx.args.source != "auto" or exc.status_code in (None, 401):
            raise
        ctx.warn(
            f"Resource Graph could not serve the {what} ({exc.status_code} {error_code(exc)}); using direct ARM calls"
        )
        return arm_call()


def load_inventory(ctx, sel, all_extensions=False):
    """The selected VMs and their extensions (no backup state): `extensions list`."""
    with ctx.progress("VMs") as prog:
        return _graph_or_arm(
            ctx,
            lambda: inventory.from_graph(ctx.factory, sel, all_extensions, prog),
            lambda: inventory.from_arm(ctx.factory, sel, all_extensions, ctx.args.max_concurrency, prog),
            "VM inventory",
        )


def load_fleet(ctx, sel, all_extensions=False):
    """(VM records, Protection by VM key): one paged Resource Graph query for both halves, or on the direct
    path the VM reads and the per-vault protected-item lists side by side."""
    ctx.factory  # noqa: B018 - sign in once, before any thread shares the credential

    def graph():
        protected = {}
        with ctx.progress("VMs") as prog:
            vms = inventory.from_graph(ctx.factory, sel, all_extensions, prog, protection=protected)
        return vms, protected

    def arm():
        from concurrent.futures import ThreadPoolExecutor

        def protected_items():
            vaults = protection.list_vaults(ctx.factory, sel.subscriptions)
            return protection.from_arm(ctx.factory, vaults, min(16, ctx.args.max_concurrency))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="protected-items") as pool:
            protected = pool.submit(protected_items)
            with ctx.progress("VMs") as prog:
                vms = inventory.from_arm(ctx.factory, sel, all_extensions, ctx.args.max_concurrency, prog)
            return vms, protected.result()

    return _graph_or_arm(ctx, graph, arm, "fleet state")


def extension_row(vm, ext):
    """az `vm extension list` JSON shape (properties flattened, `type` renamed typePropertiesType) plus VM."""
    return {
        "name": ext.name,
        "id": f"{vm.id}/extensions/{ext.name}",
        "vm": vm.name,
        "resourceGroup": vm.resource_group,
        "subscriptionId": vm.subscription,
        "location": vm.location,
        "provisioningState": ext.provisioning_state,
        "publisher": ext.publisher,
        "typePropertiesType": ext.type,
        "typeHandlerVersion": ext.version,
        "autoUpgradeMinorVersion": ext.auto_upgrade,
    }


def extensions_list(ctx):
    sel = selection(ctx)
    vms = load_inventory(ctx, sel, all_extensions=ctx.args.all)
    rows = [extension_row(vm, ext) for vm in vms for ext in vm.extensions]
    failed = [vm for vm in vms if vm.error]
    for vm in failed:
        ctx.warn(f"{vm.id}: {vm.error}")
    return Result(
        rows, EXTENSION_COLUMNS, EXIT_FAILED if failed else 0, f"{len(rows)} extension(s) on {len(vms)} VM(s)"
    )
