"""ARM template deployments for the emulator (owned by the templates area).

`az deployment group|sub create / validate / what-if` land here. Every template is checked with the kit's
own offline validator (official schemas + reviewer rules, vmsnapkit.arm) and its parameters against the
template's declarations; an invalid one gets ARM's `InvalidTemplate` error. A valid one is expanded with
vmsnapkit.arm.expand (copy loops, conditions, nested deployments) and the resources the emulator models are
applied to the estate: vaults, backup policies, protected items (with the service's own checks, the
1000-VMs-per-policy limit included) and VM extensions; anything else is only recorded. The deployment is
kept in `emu.ops["deployments"]` (see `deployments(emu)`), Succeeded or Failed with ARM's error shape.
"""

import json
import re
import threading
import uuid

from ..router import arm_error, json_response
from ..state import Extension, Policy, Vault, utcnow

_validator = None
_validator_lock = threading.Lock()

GROUP = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments/{name}"
SUB = "/subscriptions/{sub}/providers/Microsoft.Resources/deployments/{name}"


def validator():
    """One shared vmsnapkit.arm Validator (schemas are read once per process)."""
    global _validator
    with _validator_lock:
        if _validator is None:
            from vmsnapkit.arm.validate import Validator

            _validator = Validator()
        return _validator


def deployments(emu):
    """Recorded deployments, oldest first: dicts with scope, name, template, parameters, ..."""
    with emu.estate.lock:
        return list(emu.ops.get("deployments", {}).values())


def _body(req):
    """The request's JSON. az splices the template file's text in as `template:{...}` with an unquoted
    key (ARM's lenient parser accepts that), which the core's strict parser rejects; accept it too."""
    if req.body is not None or not req.raw_body:
        return req.body, None
    text = req.raw_body.decode("utf-8", "replace")
    try:
        return json.loads(re.sub(r"([{,]\s*)template\s*:", r'\1"template":', text, count=1)), None
    except ValueError as exc:
        return None, "the request body is not JSON: %s" % exc


def _checked(req):
    """(body, problems): the parsed request body and everything wrong with its template and parameters."""
    body, error = _body(req)
    if error:
        return None, [error]
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        return None, ["the request body has no properties"]
    template = props.get("template")
    if not isinstance(template, dict):
        return None, ["properties.template is missing (templateLink is not supported by the emulator)"]
    v = validator()
    findings = v.check_template(template, "template")
    params = props.get("parameters") or {}
    params_doc = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "contentVersion": "1.0.0.0",
        "parameters": params,
    }
    findings += v.check_parameters(params_doc, template, "parameters")
    return body, [str(f) for f in findings]


class _DeployFailed(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def _apply(emu, record):
    """Expand the template and create what the emulator models; raises _DeployFailed like ARM would fail."""
    from vmsnapkit.arm.expand import Context, ExpandError, expand

    est = emu.estate
    params = {k: v.get("value") for k, v in record["parameters"].items() if isinstance(v, dict)}
    sub, rg = record["subscription"], record["resource_group"]
    location = record.get("location") or _group_location(est, sub, rg) or "westus"
    ctx = Context(
        sub,
        rg,
        location,
        record["name"],
        est.tenant_id,
        {"name": "KitLoopCloud", "portal": emu.url, "resourceManager": emu.url + "/"},
    )
    try:
        resources = expand(record["template"], params, ctx)
    except ExpandError as exc:
        raise _DeployFailed("InvalidTemplate", str(exc)) from exc
    applied = []
    with est.lock:
        for res in resources:
            _apply_one(est, res)
            applied.append({"id": res.id})
    return applied


def _group_location(est, sub, rg):
    for vm in est.vms_in(sub, rg) if rg else []:
        return vm.location
    return None


def _apply_one(est, res):
    kind, names, props = res.type.lower(), res.name.split("/"), res.body.get("properties") or {}
    if kind == "microsoft.recoveryservices/vaults":
        if est.vault(res.subscription_id, res.resource_group, names[0]) is None:
            est.add_vault(
                Vault(res.subscription_id, res.resource_group, names[0], location=res.body.get("location") or "westus"),
                policies=(),
            )
    elif kind == "microsoft.recoveryservices/vaults/backuppolicies":
        vault = _vault(est, res, names[0])
        vault.policies[names[1].lower()] = Policy(name=names[1], properties=dict(props))
    elif kind == "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems":
        _protect(est, res, names, props)
    elif kind == "microsoft.compute/virtualmachines/extensions":
        vm = est.vm(res.subscription_id, res.resource_group, names[0])
        if vm is None:
            raise _DeployFailed("ParentResourceNotFound", "VM '%s' not found" % names[0])
        vm.extensions = [e for e in vm.extensions if e.name.lower() != names[1].lower()]
        vm.extensions.append(
            Extension(
                name=names[1],
                publisher=props.get("publisher"),
                type=props.get("type"),
                version=props.get("typeHandlerVersion"),
                auto_upgrade=bool(props.get("autoUpgradeMinorVersion")),
            )
        )


def _vault(est, res, name):
    vault = est.vault(res.subscription_id, res.resource_group, name)
    if vault is None:
        raise _DeployFailed("ResourceNotFound", "Recovery Services vault '%s' not found" % name)
    return vault


def _protect(est, res, names, props):
    """What the backup service checks on a protected-item PUT, then protect (as backup._configure does)."""
    vault = _vault(est, res, names[0])
    vm = est.vms.get(str(props.get("sourceResourceId", "")).lower())
    if vm is None:
        raise _DeployFailed("BMSUserErrorVmNotFound", "source VM '%s' not found" % props.get("sourceResourceId"))
    suffix = (";%s;%s" % (vm.resource_group, vm.name)).lower()
    fabric, container, item = (n.lower() for n in names[1:4])
    if fabric != "azure" or not container.endswith(suffix) or not item.endswith(suffix):
        raise _DeployFailed("BMSUserErrorContainerNameMismatch", "container/item name does not match the VM")
    policy = str(props.get("policyId", "")).rsplit("/", 1)[-1]
    if policy.lower() not in vault.policies:
        raise _DeployFailed("BMSUserErrorPolicyNotFound", "policy '%s' not found in vault %s" % (policy, vault.name))
    if vm.id.lower() not in vault.items and vault.policy_count(policy) >= 1000:
        raise _DeployFailed(
            "BMSUserErrorPolicyProtectedItemLimitReached",
            "Cannot configure backup for more than 1000 VMs per policy (%s)." % policy,
        )
    if vm.fail_enable:
        raise _DeployFailed("UserErrorVmProvisioningStateFailed", "VM %s is in a failed state" % vm.name)
    est.protect(
        vault,
        vm,
        vault.policies[policy.lower()].name,
        protection_state="IRPending",
        last_backup_status=None,
        last_backup_time=None,
    )
    vault.add_job(vm.name, "ConfigureBackup", "Completed")


def _invalid(problems):
    """ARM's answer to a template that fails validation: the first problem, all of them in details."""
    return json_response(
        {
            "error": {
                "code": "InvalidTemplate",
                "message": "Deployment template validation failed: %s" % problems[0],
                "details": [{"code": "InvalidTemplate", "message": p} for p in problems],
            }
        },
        status=400,
    )


def _deployment_id(req):
    p = req.params
    if "rg" in p:
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Resources/deployments/%s" % (
            p["sub"],
            p["rg"],
            p["name"],
        )
    return "/subscriptions/%s/providers/Microsoft.Resources/deployments/%s" % (p["sub"], p["name"])


def _resource(req, record):
    props = record["properties"]
    out = {
        "id": record["id"],
        "name": req.params["name"],
        "type": "Microsoft.Resources/deployments",
        "properties": {
            "templateHash": record["hash"],
            "parameters": props.get("parameters") or {},
            "mode": props.get("mode", "Incremental"),
            "provisioningState": record["state"],
            "timestamp": record["timestamp"],
            "duration": "PT0S",
            "correlationId": record["correlation"],
            "outputs": {},
            "outputResources": record.get("output_resources") or [],
            "validatedResources": [],
        },
    }
    if record.get("error"):
        out["properties"]["error"] = record["error"]
    if record.get("location"):
        out["location"] = record["location"]
    return out


def register(router):
    def put(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return arm_error(
                404, "SubscriptionNotFound", "The subscription '%s' could not be found." % req.params["sub"]
            )
        body, problems = _checked(req)
        if problems:
            return _invalid(problems)
        record = {
            "id": _deployment_id(req),
            "scope": "group" if "rg" in req.params else "subscription",
            "resource_group": req.params.get("rg"),
            "name": req.params["name"],
            "location": body.get("location"),
            "properties": body["properties"],
            "template": body["properties"]["template"],
            "parameters": body["properties"].get("parameters") or {},
            "state": "Succeeded",
            "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "hash": str(abs(hash(json.dumps(body["properties"]["template"], sort_keys=True)))),
            "correlation": str(uuid.uuid4()),
            "subscription": req.params["sub"],
            "output_resources": [],
            "error": None,
        }
        try:
            record["output_resources"] = _apply(req.emu, record)
        except _DeployFailed as exc:
            record["state"] = "Failed"
            record["error"] = {
                "code": "DeploymentFailed",
                "message": "At least one resource deployment operation failed.",
                "details": [{"code": exc.code, "message": exc.message}],
            }
        record["operation"] = str(uuid.uuid4())
        with est.lock:
            req.emu.ops.setdefault("deployments", {})[record["id"].lower()] = record
        # As ARM: 201 Accepted with an async-operation URL; its status carries the outcome (and the error,
        # which is what makes az report a failed deployment).
        accepted = _resource(req, dict(record, state="Accepted", error=None))
        status_url = "%s%s/operationStatuses/%s?api-version=%s" % (
            req.base_url,
            record["id"],
            record["operation"],
            req.query.get("api-version", ""),
        )
        return json_response(accepted, status=201, Azure_AsyncOperation=status_url, Retry_After=0)

    def operation_status(req):
        with req.emu.estate.lock:
            record = req.emu.ops.get("deployments", {}).get(_deployment_id(req).lower())
        if record is None or record.get("operation") != req.params["op"]:
            return arm_error(404, "OperationNotFound", "Operation not found.")
        body = {"status": record["state"]}
        if record.get("error"):
            body["error"] = record["error"]
        return json_response(body)

    def get(req):
        with req.emu.estate.lock:
            record = req.emu.ops.get("deployments", {}).get(_deployment_id(req).lower())
        if record is None:
            return arm_error(404, "DeploymentNotFound", "Deployment '%s' could not be found." % req.params["name"])
        return json_response(_resource(req, record))

    def validate(req):
        body, problems = _checked(req)
        if problems:
            return _invalid(problems)
        record = {
            "id": _deployment_id(req),
            "properties": body["properties"],
            "state": "Succeeded",
            "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "hash": "0",
            "correlation": str(uuid.uuid4()),
            "location": body.get("location"),
        }
        return json_response(_resource(req, record))

    def what_if(req):
        body, problems = _checked(req)
        if problems:
            return _invalid(problems)
        template = body["properties"]["template"]
        # Not evaluated: expression names appear as written, under the deployment's scope.
        scope = _deployment_id(req).split("/providers/Microsoft.Resources/")[0]
        changes = [
            {
                "resourceId": "%s/providers/%s/%s" % (scope, r.get("type"), r.get("name")),
                "changeType": "Create",
                "before": None,
                "after": None,
                "delta": [],
            }
            for r in template.get("resources", [])
            if isinstance(r, dict)
        ]
        return json_response({"status": "Succeeded", "properties": {"changes": changes}, "error": None})

    for base in (GROUP, SUB):
        router.add("PUT", base, put)
        router.add("GET", base, get)
        router.add("POST", base + "/validate", validate)
        router.add("POST", base + "/whatIf", what_if)
        router.add("GET", base + "/operationStatuses/{op}", operation_status)
