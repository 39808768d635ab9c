"""Generic resource listing, `GET /subscriptions/{sub}[/resourceGroups/{rg}]/resources` with ARM's tag and
resourceType $filter (owned by the templates area).

What `az resource list --tag KEY[=VALUE]` and `az resource list -g RG --resource-type ...` send; the kit's
scripts select VMs this way (cheaper than `az vm list`, which fetches every VM's full model). Only VMs are
known to the emulator, so only VMs are listed.
"""

import re

from ..router import arm_error, json_response, paged

TAG_FILTER = re.compile(r"tagname\s+eq\s+'((?:[^']|'')*)'(?:\s+and\s+tagvalue\s+eq\s+'((?:[^']|'')*)')?", re.IGNORECASE)
TYPE_FILTER = re.compile(r"resourcetype\s+eq\s+'([^']*)'", re.IGNORECASE)
GROUP_FILTER = re.compile(r"resourcegroup\s+eq\s+'([^']*)'", re.IGNORECASE)


def _generic(vm):
    return {
        "id": vm.id,
        "name": vm.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.location,
        "tags": dict(vm.tags),
    }


def _group_location(est, sub, rg):
    """A resource group exists when the estate holds a VM or a vault in it; its location is theirs."""
    for vm in est.vms_in(sub, rg):
        return vm.location
    for vault in est.vaults.values():
        if vault.subscription.lower() == sub.lower() and vault.resource_group.lower() == rg.lower():
            return vault.location
    return None


def register(router):
    @router.route("GET", "/subscriptions/{sub}/resourcegroups/{rg}")
    def get_group(req):
        est = req.emu.estate
        with est.lock:
            location = _group_location(est, req.params["sub"], req.params["rg"])
        if location is None:
            return arm_error(404, "ResourceGroupNotFound", "Resource group '%s' could not be found." % req.params["rg"])
        group_id = "/subscriptions/%s/resourceGroups/%s" % (req.params["sub"], req.params["rg"])
        return json_response(
            {
                "id": group_id,
                "name": req.params["rg"],
                "type": "Microsoft.Resources/resourceGroups",
                "location": location,
                "properties": {"provisioningState": "Succeeded"},
            }
        )

    def list_resources(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return arm_error(
                404, "SubscriptionNotFound", "The subscription '%s' could not be found." % req.params["sub"]
            )
        flt = req.query.get("$filter", "")
        tag = TAG_FILTER.search(flt)
        rtype = TYPE_FILTER.search(flt)
        group = GROUP_FILTER.search(flt)
        rg = req.params.get("rg") or (group.group(1) if group else None)
        with est.lock:
            vms = est.vms_in(req.params["sub"], rg)
            if rtype and rtype.group(1).lower() != "microsoft.compute/virtualmachines":
                vms = []
            if tag:
                key = tag.group(1).replace("''", "'").lower()
                value = tag.group(2).replace("''", "'") if tag.group(2) is not None else None
                vms = [
                    vm
                    for vm in vms
                    if any(k.lower() == key and (value is None or v == value) for k, v in vm.tags.items())
                ]
            items = [_generic(vm) for vm in vms]
        return paged(req, items)

    router.add("GET", "/subscriptions/{sub}/resources", list_resources)
    router.add("GET", "/subscriptions/{sub}/resourceGroups/{rg}/resources", list_resources)
