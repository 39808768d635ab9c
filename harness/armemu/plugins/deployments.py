"""ARM template deployments for the emulator (owned by the templates area).

`az deployment group|sub create / validate / what-if` land here. Every template is checked with the kit's
own offline validator (official schemas + reviewer rules, vmsnapkit.arm) and its parameters against the
template's declarations; an invalid one gets ARM's `InvalidTemplate` error, a valid one is recorded in
`emu.ops["deployments"]` and reported Succeeded. Resources are not created: the emulator does not evaluate
template expressions. Tests assert on what was deployed through `deployments(emu)`.
"""

import json
import os
import re
import sys
import threading
import uuid

from ..router import arm_error, json_response
from ..state import utcnow

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_validator = None
_validator_lock = threading.Lock()

GROUP = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments/{name}"
SUB = "/subscriptions/{sub}/providers/Microsoft.Resources/deployments/{name}"


def validator():
    """One shared vmsnapkit.arm Validator (schemas are read once per process)."""
    global _validator
    with _validator_lock:
        if _validator is None:
            try:
                from vmsnapkit.arm.validate import Validator
            except ImportError:
                sys.path.insert(0, os.path.join(_ROOT, "deploy"))
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
        return json.loads(re.sub(r'([{,]\s*)template\s*:', r'\1"template":', text, count=1)), None
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
    params_doc = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
                  "contentVersion": "1.0.0.0", "parameters": params}
    findings += v.check_parameters(params_doc, template, "parameters")
    return body, [str(f) for f in findings]


def _invalid(problems):
    """ARM's answer to a template that fails validation: the first problem, all of them in details."""
    return json_response({"error": {
        "code": "InvalidTemplate",
        "message": "Deployment template validation failed: %s" % problems[0],
        "details": [{"code": "InvalidTemplate", "message": p} for p in problems]}}, status=400)


def _deployment_id(req):
    p = req.params
    if "rg" in p:
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Resources/deployments/%s" % (
            p["sub"], p["rg"], p["name"])
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
            "outputResources": [],
            "validatedResources": [],
        },
    }
    if record.get("location"):
        out["location"] = record["location"]
    return out


def register(router):
    def put(req):
        est = req.emu.estate
        if req.params["sub"].lower() not in est.subscriptions:
            return arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be found."
                             % req.params["sub"])
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
        }
        with est.lock:
            req.emu.ops.setdefault("deployments", {})[record["id"].lower()] = record
        return json_response(_resource(req, record), status=201)

    def get(req):
        with req.emu.estate.lock:
            record = req.emu.ops.get("deployments", {}).get(_deployment_id(req).lower())
        if record is None:
            return arm_error(404, "DeploymentNotFound", "Deployment '%s' could not be found."
                             % req.params["name"])
        return json_response(_resource(req, record))

    def validate(req):
        body, problems = _checked(req)
        if problems:
            return _invalid(problems)
        record = {"id": _deployment_id(req), "properties": body["properties"], "state": "Succeeded",
                  "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "hash": "0",
                  "correlation": str(uuid.uuid4()), "location": body.get("location")}
        return json_response(_resource(req, record))

    def what_if(req):
        body, problems = _checked(req)
        if problems:
            return _invalid(problems)
        template = body["properties"]["template"]
        # Not evaluated: expression names appear as written, under the deployment's scope.
        scope = _deployment_id(req).split("/providers/Microsoft.Resources/")[0]
        changes = [{"resourceId": "%s/providers/%s/%s" % (scope, r.get("type"), r.get("name")),
                    "changeType": "Create", "before": None, "after": None, "delta": []}
                   for r in template.get("resources", []) if isinstance(r, dict)]
        return json_response({"status": "Succeeded", "properties": {"changes": changes}, "error": None})

    for base in (GROUP, SUB):
        router.add("PUT", base, put)
        router.add("GET", base, get)
        router.add("POST", base + "/validate", validate)
        router.add("POST", base + "/whatIf", what_if)
