"""Validate ARM templates and parameters files: official schemas plus a careful reviewer's rules.

Schema checks run in two Draft 4 passes, the template shell then each resource against its provider's
schema (see schemas.py). The reviewer's rules (rules.py) catch what a schema cannot: unused parameters,
secrets outside secure parameters, stale apiVersions, hard-coded locations and cloud host names,
unresolvable dependsOn, malformed names.

Nested templates are walked too: child `resources[]`, inline templates of `Microsoft.Resources/deployments`
and the deployment template embedded in a DeployIfNotExists policy rule (unescaped first, as Azure Policy
hands it on).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field

from . import rules
from .expressions import unescape
from .schemas import SchemaStore


@dataclass
class Finding:
    file: str
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return "%s: %s: [%s] %s" % (self.file, self.path or "$", self.rule, self.message)


@dataclass
class TemplateScope:
    """One template (top level or nested) with where it sits in the file."""

    template: dict
    path: str
    resources: list = field(default_factory=list)  # (resource, full_type, json_path)


def full_type(parent_type: str | None, child_type: str) -> str:
    """A child resource whose type has no namespace gets its parent's type prefixed."""
    if parent_type and "." not in child_type.split("/")[0]:
        return parent_type + "/" + child_type
    return child_type


def _walk_resources(resources, path, parent_type, out):
    if isinstance(resources, dict):  # symbolic-name form
        items = [(k, v, "%s.%s" % (path, k)) for k, v in resources.items()]
    else:
        items = [(i, v, "%s[%d]" % (path, i)) for i, v in enumerate(resources or [])]
    for _key, res, rpath in items:
        if not isinstance(res, dict) or not isinstance(res.get("type"), str):
            continue
        ftype = full_type(parent_type, res["type"])
        out.append((res, ftype, rpath))
        if res.get("resources"):
            _walk_resources(res["resources"], rpath + ".resources", ftype, out)


def template_scopes(template: dict, path: str = "$") -> list[TemplateScope]:
    """The template and every template nested in it, each with its flattened resources."""
    scope = TemplateScope(template, path)
    _walk_resources(template.get("resources"), path + ".resources", None, scope.resources)
    scopes = [scope]
    for res, ftype, rpath in scope.resources:
        props = res.get("properties") if isinstance(res.get("properties"), dict) else {}
        if ftype.lower() == "microsoft.resources/deployments" and isinstance(props.get("template"), dict):
            scopes += template_scopes(props["template"], rpath + ".properties.template")
        if ftype.lower() == "microsoft.authorization/policydefinitions":
            deployment = (
                (((props.get("policyRule") or {}).get("then") or {}).get("details") or {}).get("deployment")
                if isinstance(props.get("policyRule"), dict)
                else None
            )
            inner = ((deployment or {}).get("properties") or {}).get("template")
            if isinstance(inner, dict):
                ipath = rpath + ".properties.policyRule.then.details.deployment.properties.template"
                scopes += template_scopes(unescape(inner), ipath)
    return scopes


class Validator:
    """Checks files; keeps one SchemaStore so schema files are read once."""

    def __init__(self, schema_root: str | None = None, today: datetime.date | None = None):
        self.store = SchemaStore(schema_root)
        self.today = today or datetime.date.today()

    def check_template(self, template: dict, name: str = "<template>") -> list[Finding]:
        findings = []
        if not isinstance(template, dict):
            return [Finding(name, "$", "schema", "a template must be a JSON object")]
        for scope in template_scopes(template):
            prefix = scope.path
            for p in self.store.validate_shell(scope.template):
                findings.append(Finding(name, prefix + p.path[1:], "schema", p.message))
            for res, ftype, rpath in scope.resources:
                for p in self.store.validate_resource(res, ftype, rpath):
                    findings.append(Finding(name, p.path, "schema", p.message))
            for path, rule, message in rules.review_template(scope, self.store, self.today):
                findings.append(Finding(name, path, rule, message))
        return findings

    def check_parameters(self, doc: dict, template: dict | None, name: str = "<parameters>") -> list[Finding]:
        findings = [Finding(name, p.path, "schema", p.message) for p in self.store.validate_parameters_file(doc)]
        if template is not None and isinstance(doc, dict):
            for path, rule, message in rules.review_parameters(doc, template):
                findings.append(Finding(name, path, rule, message))
        return findings

    def check_file(self, path: str) -> list[Finding]:
        try:
            with open(path, encoding="utf-8-sig") as f:
                doc = json.load(f)
        except OSError as exc:
            return [Finding(path, "$", "read", "cannot read file: %s" % exc.strerror)]
        except ValueError as exc:
            return [Finding(path, "$", "json", "not valid JSON: %s" % exc)]
        if is_parameters_file(path, doc):
            return self.check_parameters(doc, _sibling_template(path), path)
        return self.check_template(doc, path)


def is_parameters_file(path: str, doc) -> bool:
    schema = doc.get("$schema", "") if isinstance(doc, dict) else ""
    return "deploymentParameters" in schema or ".parameters" in os.path.basename(path)


def _sibling_template(path: str) -> dict | None:
    """The template a parameters file belongs to: azuredeploy.json next to it, if readable."""
    candidate = os.path.join(os.path.dirname(os.path.abspath(path)), "azuredeploy.json")
    try:
        with open(candidate, encoding="utf-8-sig") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
