"""A careful reviewer's rules for ARM templates, beyond what the JSON schemas can say.

Each rule returns (json_path, rule_name, message). Messages never quote a secret value.
"""

from __future__ import annotations

import datetime
import re

from ..backupnames import CONTAINER_NAME, CONTAINER_PREFIX, ITEM_NAME, ITEM_PREFIX
from .expressions import (
    PARAM_REF,
    VAR_REF,
    is_expression,
    iter_strings,
    literal_name_skeleton,
    referenced,
    string_literals,
)

# Public-cloud host names that must never be hard-coded (a template must deploy in every cloud): use
# environment() or the az cloud.
PUBLIC_CLOUD_HOSTS = (
    "management.azure.com",
    "management.core.windows.net",
    "core.windows.net",
    "login.microsoftonline.com",
    "login.windows.net",
    "graph.windows.net",
    "graph.microsoft.com",
    "vault.azure.net",
    "database.windows.net",
    "chinacloudapi.cn",
    "usgovcloudapi.net",
    "microsoftazure.de",
    "azure.us",
    "chinacloudsites.cn",
)
# The schema host is not an endpoint: it names the schema a template is written against.
ALLOWED_HOST_CONTEXT = ("https://schema.management.azure.com/schemas/",)

SECRET_NAME = re.compile(
    r"password|passwd|secret|token|sas(uri|url|token)?$|sasuri|connectionstring|"
    r"protectedsettings|credential|privatekey|accountkey|apikey",
    re.IGNORECASE,
)
SECRET_PROPERTIES = {
    "protectedsettings",
    "adminpassword",
    "password",
    "secret",
    "connectionstring",
    "accountkey",
    "sastoken",
    "privatekey",
}
SECRET_LITERAL = re.compile(r"(?i)([?&]sig=[^&\s]+|-----BEGIN [A-Z ]*PRIVATE KEY-----|AccountKey=[^;\s]+)")
SECURE_TYPES = {"securestring", "secureobject"}
MAX_API_AGE = datetime.timedelta(days=730)
NAME_FORBIDDEN = re.compile(r"[<>%&\\?#]")
AZURE_FABRIC = re.compile(r"^azure$", re.IGNORECASE)
PROTECTED_ITEMS = "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems"


def review_template(scope, store, today: datetime.date):
    template = scope.template
    out = []
    for rule in (
        _parameters_used,
        _references_declared,
        _secrets,
        _api_versions,
        _locations,
        _depends_on,
        _names,
        _hosts,
    ):
        out += rule(scope, store, today) if rule is _api_versions else rule(scope)
    return (
        [(p if p.startswith(scope.path) else scope.path + p[1:], r, m) for p, r, m in out]
        if template is not None
        else out
    )


def _params(template) -> dict:
    p = template.get("parameters")
    return p if isinstance(p, dict) else {}


def _body_without_parameters(template: dict) -> dict:
    return {k: v for k, v in own_scope(template).items() if k != "parameters"}


def own_scope(value):
    """The template without the inline templates of inner-scope nested deployments (checked on their own)."""
    if isinstance(value, list):
        return [own_scope(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        if (
            k == "template"
            and isinstance(v, dict)
            and str((value.get("expressionEvaluationOptions") or {}).get("scope", "")).lower() == "inner"
        ):
            continue
        out[k] = own_scope(v)
    return out


def _parameters_used(scope):
    template = scope.template
    used = {n.lower() for n in referenced(_body_without_parameters(template))}
    # a parameter may be used in another parameter's default value
    for decl in _params(template).values():
        if isinstance(decl, dict) and "defaultValue" in decl:
            used |= {n.lower() for n in referenced(decl["defaultValue"])}
    return [
        ("$.parameters.%s" % name, "unused-parameter", "parameter '%s' is declared but never used" % name)
        for name in _params(template)
        if name.lower() not in used
    ]


def _references_declared(scope):
    template = scope.template
    out = []
    declared = {n.lower() for n in _params(template)}
    for name in sorted(referenced(own_scope(template))):
        if name.lower() not in declared:
            out.append(("$", "undeclared-parameter", "parameters('%s') is referenced but not declared" % name))
    variables = template.get("variables") if isinstance(template.get("variables"), dict) else {}
    declared_vars = {n.lower() for n in variables}
    for name in sorted(referenced(own_scope(template), VAR_REF)):
        if name.lower() not in declared_vars:
            out.append(("$", "undeclared-variable", "variables('%s') is referenced but not declared" % name))
    return out


def _secure_params(template) -> set[str]:
    return {
        n.lower()
        for n, d in _params(template).items()
        if isinstance(d, dict) and str(d.get("type", "")).lower() in SECURE_TYPES
    }


def _secrets(scope):
    template = scope.template
    out = []
    secure = _secure_params(template)
    for name, decl in _params(template).items():
        if not isinstance(decl, dict):
            continue
        ptype = str(decl.get("type", "")).lower()
        if SECRET_NAME.search(name) and ptype not in SECURE_TYPES:
            out.append(
                (
                    "$.parameters.%s" % name,
                    "secret-parameter",
                    "parameter '%s' looks like a secret but is %s, not securestring/secureObject"
                    % (name, decl.get("type")),
                )
            )
        if ptype in SECURE_TYPES and decl.get("defaultValue") not in (None, "", {}):
            out.append(
                (
                    "$.parameters.%s.defaultValue" % name,
                    "secret-default",
                    "secure parameter '%s' has a default value; secrets never go in defaults" % name,
                )
            )
    for oname, odecl in (template.get("outputs") or {}).items():
        refs = {n.lower() for n in referenced(odecl)}
        if refs & secure:
            out.append(
                (
                    "$.outputs.%s" % oname,
                    "secret-output",
                    "output '%s' exposes secure parameter(s) %s" % (oname, ", ".join(sorted(refs & secure))),
                )
            )
        if any(is_expression(s) and re.search(r"\blist[A-Za-z]*\(", s) for _p, s in iter_strings(odecl)):
            out.append(
                (
                    "$.outputs.%s" % oname,
                    "secret-output",
                    "output '%s' returns the result of a list*() call (keys or secrets)" % oname,
                )
            )
    for rpath, prop, value in _secret_properties(scope):
        if value in ({}, "", None):
            continue
        refs = {n.lower() for n in referenced(value)}
        only_secure = is_expression(value) and refs and refs <= secure
        if not only_secure:
            out.append(
                (rpath, "secret-property", "'%s' must come from a securestring/secureObject parameter only" % prop)
            )
    for path, s in iter_strings(_body_without_parameters(template)):
        if SECRET_LITERAL.search(s):
            out.append((path, "secret-literal", "a secret-looking literal (SAS signature, key) is in the template"))
    for name, decl in _params(template).items():
        for path, s in iter_strings(decl, "$.parameters.%s" % name):
            if SECRET_LITERAL.search(s):
                out.append((path, "secret-literal", "a secret-looking literal is in parameter '%s'" % name))
    return out


def _secret_properties(scope):
    for res, _ftype, rpath in scope.resources:
        props = res.get("properties")
        if isinstance(props, dict):
            for key, value in props.items():
                if key.lower() in SECRET_PROPERTIES:
                    yield "%s.properties.%s" % (rpath, key), key, value


def _api_versions(scope, store, today):
    out = []
    for res, ftype, rpath in scope.resources:
        api = res.get("apiVersion")
        if not isinstance(api, str) or is_expression(api):
            out.append((rpath + ".apiVersion", "api-version", "apiVersion must be a literal date string"))
            continue
        try:
            date = datetime.date.fromisoformat(api[:10])
        except ValueError:
            out.append((rpath + ".apiVersion", "api-version", "apiVersion '%s' is not a date" % api))
            continue
        newer = [v for v in store.api_versions(ftype) if v > api]
        if today - date > MAX_API_AGE and newer:
            out.append(
                (
                    rpath + ".apiVersion",
                    "api-version",
                    "%s@%s is more than two years old; use %s" % (ftype, api, newer[-1]),
                )
            )
    return out


def _locations(scope):
    out = []
    uses_location = False
    for res, _ftype, rpath in scope.resources:
        if "location" not in res:
            continue
        uses_location = True
        loc = res["location"]
        if not (is_expression(loc) and ("parameters(" in loc.lower() or "location" in loc.lower())):
            out.append(
                (
                    rpath + ".location",
                    "location",
                    "location must come from a parameter (e.g. [parameters('location')]), not a literal",
                )
            )
    if uses_location and "location" not in {n.lower() for n in _params(scope.template)}:
        out.append(("$.parameters", "location", "resources have a location but there is no 'location' parameter"))
    return out


def _depends_on(scope):
    out = []
    names = set()
    types = set()
    for res, ftype, _rpath in scope.resources:
        types.add(ftype.lower())
        if isinstance(res.get("name"), str) and not is_expression(res["name"]):
            names.add(res["name"].lower())
        if isinstance(res.get("copy"), dict) and isinstance(res["copy"].get("name"), str):
            names.add(res["copy"]["name"].lower())
    if isinstance(scope.template.get("resources"), dict):
        names |= {k.lower() for k in scope.template["resources"]}
    for res, _ftype, rpath in scope.resources:
        for i, dep in enumerate(res.get("dependsOn") or []):
            where = "%s.dependsOn[%d]" % (rpath, i)
            if not isinstance(dep, str):
                out.append((where, "depends-on", "dependsOn entries must be strings"))
            elif not is_expression(dep):
                if dep.lower() not in names:
                    out.append((where, "depends-on", "'%s' names no resource or copy loop in this template" % dep))
            else:
                literal_types = [s for s in string_literals(dep) if "/" in s and "." in s.split("/")[0]]
                if not literal_types:
                    out.append((where, "depends-on", "cannot resolve dependsOn expression %s" % dep))
                elif literal_types[0].lower() not in types:
                    out.append(
                        (where, "depends-on", "depends on a %s, which this template does not deploy" % literal_types[0])
                    )
    return out


def _names(scope):
    out = []
    for res, ftype, rpath in scope.resources:
        name = res.get("name")
        if not isinstance(name, str) or not name:
            out.append((rpath + ".name", "name", "every resource needs a name"))
            continue
        skeleton = literal_name_skeleton(name)
        if skeleton is None:
            continue  # a computed name we cannot see into
        nested = rpath[len(scope.path) :].count(".resources") > 1
        expected = 1 if nested else len(ftype.split("/")) - 1
        if "/" in ftype and skeleton.count("/") + 1 != expected:
            out.append(
                (
                    rpath + ".name",
                    "name",
                    "name '%s' has %d segment(s); type %s needs %d" % (name, skeleton.count("/") + 1, ftype, expected),
                )
            )
            continue
        for seg in skeleton.split("/"):
            literal = seg.replace("*", "")
            if not seg or seg != seg.strip() or seg.endswith(".") or NAME_FORBIDDEN.search(literal):
                out.append((rpath + ".name", "name", "name segment '%s' is empty or has a forbidden character" % seg))
        if ftype.lower() == PROTECTED_ITEMS and not nested:
            segs = skeleton.split("/")
            if len(segs) == 4 and not all(
                _could_match(seg, rx, prefix)
                for seg, rx, prefix in (
                    (segs[1], AZURE_FABRIC, "azure"),
                    (segs[2], CONTAINER_NAME, CONTAINER_PREFIX.lower()),
                    (segs[3], ITEM_NAME, ITEM_PREFIX.lower()),
                )
            ):
                out.append(
                    (
                        rpath + ".name",
                        "name",
                        "protected item name must be <vault>/Azure/%s<rg>;<vm>/"
                        "%s<rg>;<vm>" % (CONTAINER_PREFIX.lower(), ITEM_PREFIX.lower()),
                    )
                )
    return out


def _could_match(segment: str, pattern, prefix: str) -> bool:
    """Whether a name segment (with `*` for computed parts) can be a documented backup name."""
    if "*" not in segment:
        return bool(pattern.match(segment))
    literal = segment.split("*", 1)[0].lower()
    return prefix.startswith(literal) or literal.startswith(prefix)


def _hosts(scope):
    out = []
    for path, s in iter_strings(_body_without_parameters(scope.template)):
        out += [(path, "cloud-host", m) for m in hard_coded_hosts(s)]
    for name, decl in _params(scope.template).items():
        for path, s in iter_strings(decl, "$.parameters.%s" % name):
            out += [(path, "cloud-host", m) for m in hard_coded_hosts(s)]
    return out


def hard_coded_hosts(text: str) -> list[str]:
    """Messages for every public-cloud host name hard-coded in text (schema URIs excepted)."""
    cleaned = text
    for allowed in ALLOWED_HOST_CONTEXT:
        cleaned = cleaned.replace(allowed, "")
    low = cleaned.lower()
    return [
        "hard-coded cloud host name '%s': use environment() or the active cloud's endpoints" % h
        for h in PUBLIC_CLOUD_HOSTS
        if h in low
    ]


# -- parameters files ---------------------------------------------------------------------------------
_JSON_TYPES = {
    "string": str,
    "securestring": str,
    "int": int,
    "bool": bool,
    "array": list,
    "object": dict,
    "secureobject": dict,
}


def review_parameters(doc: dict, template: dict):
    out = []
    declared = {n.lower(): (n, d) for n, d in _params(template).items() if isinstance(d, dict)}
    given = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
    for name, entry in given.items():
        where = "$.parameters.%s" % name
        if name.lower() not in declared:
            out.append((where, "unknown-parameter", "the template declares no parameter '%s'" % name))
            continue
        _n, decl = declared[name.lower()]
        ptype = str(decl.get("type", "")).lower()
        if not isinstance(entry, dict):
            continue
        if "reference" in entry:
            if ptype not in SECURE_TYPES:
                out.append((where, "secret-parameter", "Key Vault reference given for non-secure '%s'" % name))
            continue
        value = entry.get("value")
        expected = _JSON_TYPES.get(ptype)
        wrong_bool = expected is int and isinstance(value, bool)
        if expected and not (isinstance(value, expected) and not wrong_bool):
            out.append((where, "parameter-type", "'%s' must be a %s" % (name, decl.get("type"))))
        if ptype in SECURE_TYPES and value not in ("", {}):
            out.append(
                (
                    where,
                    "secret-value",
                    "secure parameter '%s' carries a literal value; use a Key "
                    "Vault reference in committed parameter files" % name,
                )
            )
        if "allowedValues" in decl and value not in decl["allowedValues"]:
            out.append((where, "parameter-value", "'%s' is not one of the allowed values" % name))
        for path, s in iter_strings(value, where + ".value"):
            out += [(path, "cloud-host", m) for m in hard_coded_hosts(s)]
            if SECRET_LITERAL.search(s):
                out.append((path, "secret-literal", "a secret-looking literal is in parameter '%s'" % name))
    for lname, (name, decl) in declared.items():
        if "defaultValue" not in decl and lname not in {n.lower() for n in given}:
            out.append(("$.parameters", "missing-parameter", "required parameter '%s' has no value" % name))
    return out


__all__ = ["review_template", "review_parameters", "hard_coded_hosts", "PUBLIC_CLOUD_HOSTS", "PARAM_REF"]
