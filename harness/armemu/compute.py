"""Microsoft.Compute: VM list/get/instanceView and extension list/get, shaped after the compute examples
(VirtualMachine_Get.json, VirtualMachine_Get_InstanceView.json, VirtualMachineExtension_*_Gen.json)."""

from .identity import subscription_not_found
from .router import arm_error, json_response, paged, resource_not_found
from .state import iso, utcnow

VM_BASE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"


def extension_resource(vm, ext, instance_view=False):
    props = {
        "autoUpgradeMinorVersion": ext.auto_upgrade,
        "provisioningState": ext.provisioning_state,
        "publisher": ext.publisher,
        "type": ext.type,
        "typeHandlerVersion": ext.version,
        "settings": {},
    }
    if instance_view:
        props["instanceView"] = extension_instance_view(ext)
    return {
        "name": ext.name,
        "id": f"{vm.id}/extensions/{ext.name}",
        "type": "Microsoft.Compute/virtualMachines/extensions",
        "location": vm.location,
        "properties": props,
    }


def extension_instance_view(ext):
    level = "Error" if "failed" in ext.status_code.lower() else "Info"
    return {
        "name": ext.name,
        "type": f"{ext.publisher}.{ext.type}",
        "typeHandlerVersion": ext.version,
        "statuses": [
            {
                "code": ext.status_code,
                "level": level,
                "displayStatus": "Provisioning failed" if level == "Error" else "Provisioning succeeded",
                "message": ext.status_message,
                "time": iso(utcnow()),
            }
        ],
    }


def instance_view(vm):
    handlers = [
        {
            "type": f"{e.publisher}.{e.type}",
            "typeHandlerVersion": e.version,
            "status": {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready"},
        }
        for e in vm.extensions
    ]
    return {
        "computerName": vm.name,
        "osName": "ubuntu",
        "osVersion": "22.04",
        "vmAgent": {
            "vmAgentVersion": "2.7.3",
            "extensionHandlers": handlers,
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "GuestAgent is running and processing the extensions.",
                    "time": iso(utcnow()),
                }
            ],
        },
        "extensions": [extension_instance_view(e) for e in vm.extensions],
        "statuses": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "time": iso(utcnow()),
            },
            {
                "code": f"PowerState/{vm.power_state}",
                "level": "Info",
                "displayStatus": f"VM {vm.power_state}",
            },
        ],
    }


def vm_resource(vm, expand_instance_view=False, children=True):
    """A VM as GET returns it; list answers leave out the child `resources` (children=False), as ARM does."""
    props = {
        "vmId": vm.vm_id,
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {
            "osDisk": {
                "osType": "Linux",
                "name": f"{vm.name}_OsDisk",
                "createOption": "FromImage",
                "diskSizeGB": 30,
            },
            "dataDisks": [],
        },
        "osProfile": {
            "computerName": vm.name,
            "adminUsername": "azureuser",
            "linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True},
        },
        "provisioningState": "Succeeded",
    }
    if expand_instance_view:
        props["instanceView"] = instance_view(vm)
    return {
        "name": vm.name,
        "id": vm.id,
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.location,
        "tags": dict(vm.tags),
        "properties": props,
    } | ({"resources": [extension_resource(vm, e) for e in vm.extensions]} if children else {})


def _expand(req):
    return "instanceview" in req.query.get("$expand", "").lower()


def lookup_vm(req):
    """(vm, None) or (None, error Response): unknown subscription, missing VM, or an injected failure."""
    est = req.emu.estate
    p = req.params
    if p["sub"].lower() not in est.subscriptions:
        return None, subscription_not_found(p["sub"])
    vm = est.vm(p["sub"], p["rg"], p["vm"])
    if vm is None:
        return None, resource_not_found("Microsoft.Compute/virtualMachines", p["vm"], p["rg"])
    if vm.fail_get:
        return None, arm_error(500, "InternalServerError", "An internal execution error occurred (injected).")
    return vm, None


def _listed(vm):
    return vm_resource(vm, children=False)


def register(router):
    @router.route("GET", "/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines")
    def list_all(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return subscription_not_found(req.params["sub"])
        with est.lock:
            return paged(req, est.vms_in(req.params["sub"]), shape=_listed)

    @router.route("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines")
    def list_rg(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return subscription_not_found(req.params["sub"])
        with est.lock:
            return paged(req, est.vms_in(req.params["sub"], req.params["rg"]), shape=_listed)

    @router.route("GET", VM_BASE)
    def get_vm(req):
        with req.emu.estate.lock:
            vm, err = lookup_vm(req)
            return err or json_response(vm_resource(vm, _expand(req)))

    @router.route("GET", VM_BASE + "/instanceView")
    def get_instance_view(req):
        with req.emu.estate.lock:
            vm, err = lookup_vm(req)
            return err or json_response(instance_view(vm))

    @router.route("GET", VM_BASE + "/extensions")
    def list_extensions(req):
        with req.emu.estate.lock:
            vm, err = lookup_vm(req)
            return err or json_response({"value": [extension_resource(vm, e, _expand(req)) for e in vm.extensions]})

    @router.route("GET", VM_BASE + "/extensions/{ext}")
    def get_extension(req):
        with req.emu.estate.lock:
            vm, err = lookup_vm(req)
            if err:
                return err
            for e in vm.extensions:
                if e.name.lower() == req.params["ext"].lower():
                    return json_response(extension_resource(vm, e, _expand(req)))
            return arm_error(
                404,
                "NotFound",
                f"The entity was not found in this Azure location (extension {req.params['ext']}).",
            )
