"""Microsoft.RecoveryServices: vaults, policies, container refresh, protectable and protected items,
the protected-item PUT long-running operation, on-demand backup and jobs.

Shapes follow the recoveryservices / recoveryservicesbackup examples (GETVault.json, ConfigureProtection.json,
Compute_ProtectedItem_Get.json, ProtectedItemOperationStatus.json, RefreshContainers*.json, ListJobs.json).
"""

import re
import uuid

from .identity import subscription_not_found
from .router import Response, arm_error, json_response, paged, resource_not_found
from .state import Operation, Policy, iso, utcnow

VAULTS = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults"
V = VAULTS + "/{vault}"
ITEM = V + "/backupFabrics/{fabric}/protectionContainers/{container}/protectedItems/{item}"
API = "2025-02-01"
VM_TYPE = "Microsoft.Compute/virtualMachines"


def vault_resource(v):
    return {
        "location": v.location,
        "name": v.name,
        "id": v.id,
        "type": "Microsoft.RecoveryServices/vaults",
        "etag": "W/\"datetime'2026-01-01T00%3A00%3A00Z'\"",
        "tags": {},
        "sku": {"name": "RS0", "tier": "Standard"},
        "properties": {
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "redundancySettings": {
                "standardTierStorageRedundancy": "GeoRedundant",
                "crossRegionRestore": "Disabled",
            },
        },
    }


def policy_resource(v, pol):
    props = dict(pol.properties)
    props["protectedItemsCount"] = v.policy_count(pol.name)
    return {
        "id": v.policy_id(pol.name),
        "name": pol.name,
        "type": "Microsoft.RecoveryServices/vaults/backupPolicies",
        "properties": props,
    }


def item_path(v, vm):
    return f"{v.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}/protectedItems/{vm.item_name}"


def protected_item_resource(v, it):
    vm = it.vm
    return {
        "id": item_path(v, vm),
        "name": vm.item_name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems",
        "properties": {
            "friendlyName": vm.name,
            "virtualMachineId": vm.id,
            "protectionStatus": "Healthy" if it.health_status == "Passed" else "Unhealthy",
            "protectionState": it.protection_state,
            "healthStatus": it.health_status,
            "lastBackupStatus": it.last_backup_status,
            "lastBackupTime": iso(it.last_backup_time),
            "protectedItemDataId": str(int(vm.vm_id.replace("-", "")[:15], 16)),
            "protectedItemType": VM_TYPE,
            "backupManagementType": "AzureIaasVM",
            "workloadType": "VM",
            "containerName": vm.container_name.split(";", 1)[1],
            "sourceResourceId": vm.id,
            "policyId": it.policy_id,
            "policyName": it.policy_id.rsplit("/", 1)[-1],
            "lastRecoveryPoint": iso(it.last_backup_time) if it.last_backup_status == "Completed" else None,
        },
    }


def protectable_item_resource(v, vm):
    return {
        "id": f"{v.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}/protectableItems/{vm.item_name}",
        "name": vm.item_name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectableItems",
        "properties": {
            "friendlyName": vm.name,
            "virtualMachineId": vm.id,
            "protectionState": "NotProtected",
            "protectableItemType": VM_TYPE,
            "backupManagementType": "AzureIaasVM",
            "workloadType": "VM",
            "virtualMachineVersion": "Compute",
            "resourceGroup": vm.resource_group,
        },
    }


def job_resource(v, job):
    end = job.end or utcnow()
    secs = (end - job.start).total_seconds()
    props = {
        "jobType": "AzureIaaSVMJob",
        "duration": f"PT{secs:.7f}S",
        "virtualMachineVersion": "Compute",
        "entityFriendlyName": job.vm_name,
        "backupManagementType": "AzureIaasVM",
        "operation": job.operation,
        "status": job.status,
        "startTime": iso(job.start),
        "activityId": str(uuid.uuid5(uuid.NAMESPACE_OID, job.id)),
    }
    if job.end:
        props["endTime"] = iso(job.end)
    if job.error:
        props["errorDetails"] = [
            {
                "errorCode": job.error,
                "errorString": f"{job.error} (emulated failure)",
                "recommendations": ["Retry the operation."],
            }
        ]
    return {
        "id": f"{v.id}/backupJobs/{job.id}",
        "name": job.id,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": props,
    }


def operation_status(op, running=None):
    running = op.remaining > 0 if running is None else running
    body = {
        "id": op.id,
        "name": op.id,
        "status": "InProgress" if running else op.final,
        "startTime": iso(utcnow()),
        "properties": {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.job_id},
    }
    if not running:
        body["endTime"] = iso(utcnow())
        if op.error:
            body["error"] = op.error
    return body


def lookup_vault(req):
    est, p = req.emu.estate, req.params
    if p["sub"].lower() not in est.subscriptions:
        return None, subscription_not_found(p["sub"])
    v = est.vault(p["sub"], p["rg"], p["vault"])
    if v is None:
        return None, resource_not_found("Microsoft.RecoveryServices/vaults", p["vault"], p["rg"])
    if v.forbidden:
        action = "read" if req.method == "GET" else "write"
        return None, arm_error(
            403,
            "AuthorizationFailed",
            "The client 'armemu-managed-identity' with object id "
            "'00000000-0000-4000-8000-0000000000aa' does not have authorization to perform action "
            f"'Microsoft.RecoveryServices/vaults/{action}' over scope '{v.id}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.",
        )
    return v, None


def vault_route(fn):
    """Wrap a handler taking (req, vault): the vault is looked up (404/403 answered) under the estate lock."""

    def wrapper(req):
        with req.emu.estate.lock:
            v, err = lookup_vault(req)
            return err or fn(req, v)

    return wrapper


def _item_for(req, v):
    """The protected item addressed by {container}/{item}, matched case-insensitively (None when absent)."""
    want = req.params["item"].lower()
    for it in v.items.values():
        if it.vm.item_name.lower() == want:
            return it
    return None


def _async_headers(req, op, base):
    q = f"?api-version={req.query.get('api-version', API)}"
    return {
        "Location": f"{req.base_url}{base}/operationResults/{op.id}{q}",
        "Azure-AsyncOperation": f"{req.base_url}{base}/operationsStatus/{op.id}{q}",
        "Retry-After": str(req.emu.knobs.lro_retry_after),
    }


def _new_op(v, job, req, final="Succeeded", error=None):
    op_id = str(uuid.uuid4())
    op = Operation(id=op_id, job_id=job.id, remaining=int(req.emu.knobs.lro_polls), final=final, error=error)
    v.operations[op_id] = op
    return op


def _advance(v, op):
    """One poll of an operation: InProgress while `remaining` lasts, then the final status (job settled)."""
    if op.remaining > 0:
        op.remaining -= 1
        return operation_status(op, running=True)
    job = v.jobs.get(op.job_id)
    if job and job.status == "InProgress":
        job.status = "Completed" if op.final == "Succeeded" else "Failed"
        job.end = utcnow()
    return operation_status(op)


def _filters(req):
    return {k.lower(): val for k, val in re.findall(r"(\w+)\s+eq\s+'([^']*)'", req.query.get("$filter", ""))}


def register(router):
    @router.route("GET", "/subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults")
    def list_vaults_sub(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return subscription_not_found(req.params["sub"])
        with est.lock:
            sub = req.params["sub"].lower()
            items = [vault_resource(v) for v in est.vaults.values() if v.subscription.lower() == sub]
        return json_response({"value": sorted(items, key=lambda r: r["id"].lower())})

    @router.route("GET", VAULTS)
    def list_vaults_rg(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return subscription_not_found(req.params["sub"])
        with est.lock:
            sub, rg = req.params["sub"].lower(), req.params["rg"].lower()
            items = [
                vault_resource(v)
                for v in est.vaults.values()
                if v.subscription.lower() == sub and v.resource_group.lower() == rg
            ]
        return json_response({"value": items})

    router.add("GET", V, vault_route(lambda req, v: json_response(vault_resource(v))))

    @vault_route
    def list_policies(req, v):
        return json_response({"value": [policy_resource(v, p) for p in v.policies.values()]})

    router.add("GET", V + "/backupPolicies", list_policies)

    @vault_route
    def get_policy(req, v):
        pol = v.policies.get(req.params["policy"].lower())
        if pol is None:
            return arm_error(404, "BMSUserErrorPolicyNotFound", "Policy not found. Please provide a valid policy name.")
        return json_response(policy_resource(v, pol))

    router.add("GET", V + "/backupPolicies/{policy}", get_policy)

    @vault_route
    def put_policy(req, v):
        props = (req.body or {}).get("properties") or {}
        if str(props.get("backupManagementType", "")).lower() != "azureiaasvm":
            return arm_error(400, "BMSUserErrorInvalidPolicyInput", "backupManagementType must be AzureIaasVM.")
        props = {k: val for k, val in props.items() if k != "protectedItemsCount"}
        name = req.params["policy"]
        pol = v.policies.get(name.lower())
        if pol:
            pol.properties = props
        else:
            pol = v.policies[name.lower()] = Policy(name=name, properties=props)
        return json_response(policy_resource(v, pol))

    router.add("PUT", V + "/backupPolicies/{policy}", put_policy)

    @vault_route
    def refresh(req, v):
        op_id = str(uuid.uuid4())
        v.refresh_ops[op_id] = int(req.emu.knobs.refresh_polls)
        loc = f"{req.base_url}{v.id}/backupFabrics/Azure/operationResults/{op_id}?api-version={API}"
        return Response(202, None, {"Location": loc, "Retry-After": "0"})

    router.add("POST", V + "/backupFabrics/{fabric}/refreshContainers", refresh)

    @vault_route
    def refresh_result(req, v):
        op_id = req.params["op"]
        if op_id not in v.refresh_ops:
            return arm_error(404, "BMSUserErrorOperationNotFound", f"Operation {op_id} not found.")
        if v.refresh_ops[op_id] > 0:
            v.refresh_ops[op_id] -= 1
            loc = f"{req.base_url}{v.id}/backupFabrics/Azure/operationResults/{op_id}?api-version={API}"
            return Response(202, None, {"Location": loc, "Retry-After": "0"})
        for vm in req.emu.estate.vms_in(v.subscription):
            if vm.location.lower() == v.location.lower():
                vm.discovered = True
        return Response(204)

    router.add("GET", V + "/backupFabrics/{fabric}/operationResults/{op}", refresh_result)

    @vault_route
    def protectable(req, v):
        est = req.emu.estate
        vms = [
            vm
            for vm in est.vms_in(v.subscription)
            if vm.discovered and vm.location.lower() == v.location.lower() and est.protecting_vault(vm) is None
        ]
        return paged(req, vms, shape=lambda vm: protectable_item_resource(v, vm))

    router.add("GET", V + "/backupProtectableItems", protectable)

    @vault_route
    def protected_list(req, v):
        items = sorted(v.items.values(), key=lambda it: it.vm.id.lower())
        return paged(req, items, shape=lambda it: protected_item_resource(v, it))

    router.add("GET", V + "/backupProtectedItems", protected_list)

    @vault_route
    def get_item(req, v):
        it = _item_for(req, v)
        if it is None:
            return arm_error(404, "BMSUserErrorProtectedItemNotFound", "Protected item not found.")
        return json_response(protected_item_resource(v, it))

    router.add("GET", ITEM, get_item)

    @vault_route
    def put_item(req, v):
        return _configure(req, v)

    router.add("PUT", ITEM, put_item)

    @vault_route
    def delete_item(req, v):
        it = _item_for(req, v)
        if it is None:
            return Response(204)
        del v.items[it.vm.id.lower()]
        job = v.add_job(it.vm.name, "DeleteBackupData", "Completed")
        op = _new_op(v, job, req)
        return Response(202, None, _async_headers(req, op, item_path(v, it.vm)))

    router.add("DELETE", ITEM, delete_item)

    @vault_route
    def item_op_status(req, v):
        op = v.operations.get(req.params["op"])
        if op is None:
            return arm_error(404, "BMSUserErrorOperationNotFound", "Operation not found.")
        body = _advance(v, op)
        headers = {"Retry-After": str(req.emu.knobs.lro_retry_after)} if body["status"] == "InProgress" else {}
        return json_response(body, **headers)

    router.add("GET", ITEM + "/operationsStatus/{op}", item_op_status)
    router.add("GET", V + "/backupOperations/{op}", item_op_status)

    @vault_route
    def item_op_result(req, v):
        op = v.operations.get(req.params["op"])
        if op is None:
            return arm_error(404, "BMSUserErrorOperationNotFound", "Operation not found.")
        status = _advance(v, op)
        if status["status"] == "InProgress":
            return Response(202, None, {"Location": req.base_url + req.path, "Retry-After": "0"})
        it = _item_for(req, v)
        return json_response(protected_item_resource(v, it)) if it else Response(204)

    router.add("GET", ITEM + "/operationResults/{op}", item_op_result)

    @vault_route
    def trigger_backup(req, v):
        it = _item_for(req, v)
        if it is None:
            return arm_error(404, "BMSUserErrorProtectedItemNotFound", "Protected item not found.")
        failed = it.vm.fail_backup
        job = v.add_job(
            it.vm.name,
            "Backup",
            "InProgress" if req.emu.knobs.lro_polls else ("Failed" if failed else "Completed"),
            error="UserErrorGuestAgentStatusUnavailable" if failed else None,
        )
        it.last_backup_status = "Failed" if failed else "Completed"
        it.last_backup_time = utcnow()
        it.health_status = "ActionRequired" if failed else "Passed"
        if not failed:
            it.protection_state = "Protected"
        op = _new_op(v, job, req, "Failed" if failed else "Succeeded")
        return Response(202, None, _async_headers(req, op, item_path(v, it.vm)))

    router.add("POST", ITEM + "/backup", trigger_backup)

    @vault_route
    def list_jobs(req, v):
        f = _filters(req)
        jobs = sorted(v.jobs.values(), key=lambda j: j.start, reverse=True)
        for key, attr in (("operation", "operation"), ("status", "status")):
            if key in f:
                jobs = [j for j in jobs if getattr(j, attr).lower() == f[key].lower()]
        return paged(req, jobs, shape=lambda j: job_resource(v, j))

    router.add("GET", V + "/backupJobs", list_jobs)

    @vault_route
    def get_job(req, v):
        job = v.jobs.get(req.params["job"].lower()) or v.jobs.get(req.params["job"])
        if job is None:
            return arm_error(404, "BMSUserErrorJobNotFound", "Job not found.")
        return json_response(job_resource(v, job))

    router.add("GET", V + "/backupJobs/{job}", get_job)


def _configure(req, v):
    """PUT protectedItems: validate as the service does, then create the item and a ConfigureBackup job."""
    est = req.emu.estate
    props = (req.body or {}).get("properties") or {}
    if str(props.get("protectedItemType", "")).lower() != VM_TYPE.lower():
        return arm_error(
            400,
            "BMSUserErrorInvalidInput",
            f"properties.protectedItemType must be '{VM_TYPE}' (got {props.get('protectedItemType')!r}).",
        )
    src = str(props.get("sourceResourceId", ""))
    vm = est.vms.get(src.lower())
    if vm is None:
        return arm_error(400, "BMSUserErrorVmNotFound", f"The source VM '{src}' was not found.")
    want_c, want_i = req.params["container"].lower(), req.params["item"].lower()
    if not (
        want_c.endswith(f";{vm.resource_group};{vm.name}".lower())
        and want_i.endswith(f";{vm.resource_group};{vm.name}".lower())
    ):
        return arm_error(400, "BMSUserErrorContainerNameMismatch", "Container or item name does not match the VM.")
    existing = v.items.get(vm.id.lower())
    if props.get("protectionState") == "ProtectionStopped":
        if existing is None:
            return arm_error(404, "BMSUserErrorProtectedItemNotFound", "Protected item not found.")
        existing.protection_state = "ProtectionStopped"
        job = v.add_job(vm.name, "DisableBackup", "Completed")
        op = _new_op(v, job, req)
        return Response(202, None, _async_headers(req, op, item_path(v, vm)))
    policy_id = str(props.get("policyId", ""))
    pol_name = policy_id.rsplit("/", 1)[-1]
    if not policy_id.lower().startswith(v.id.lower() + "/backuppolicies/") or pol_name.lower() not in v.policies:
        return arm_error(404, "BMSUserErrorPolicyNotFound", f"Policy '{policy_id}' not found in vault {v.name}.")
    if vm.location.lower() != v.location.lower():
        return arm_error(
            400,
            "BMSUserErrorVMLocationMismatch",
            f"VM location {vm.location} differs from the vault location {v.location}.",
        )
    other = est.protecting_vault(vm)
    if other is not None and other is not v:
        return arm_error(400, "UserErrorVmAlreadyProtected", f"The VM is already protected by vault {other.name}.")
    if existing is None and v.policy_count(pol_name) >= 1000:
        return arm_error(
            400,
            "BMSUserErrorPolicyProtectedItemLimitReached",
            "Cannot configure backup for more than 1000 VMs per policy.",
        )
    status = "InProgress" if req.emu.knobs.lro_polls else ("Failed" if vm.fail_enable else "Completed")
    job = v.add_job(
        vm.name,
        "ConfigureBackup",
        status,
        error="UserErrorVmProvisioningStateFailed" if vm.fail_enable else None,
    )
    if vm.fail_enable:
        op = _new_op(
            v,
            job,
            req,
            "Failed",
            {
                "code": "UserErrorVmProvisioningStateFailed",
                "message": "The VM is in a failed provisioning state (emulated).",
            },
        )
    else:
        if existing:  # a policy change, or protection resumed after a stop
            existing.policy_id = v.policy_id(v.policies[pol_name.lower()].name)
            existing.protection_state = "Protected"
        else:
            est.protect(
                v,
                vm,
                v.policies[pol_name.lower()].name,
                protection_state="IRPending",
                last_backup_status=None,
                last_backup_time=None,
            )
        op = _new_op(v, job, req)
    return Response(202, None, _async_headers(req, op, item_path(v, vm)))
