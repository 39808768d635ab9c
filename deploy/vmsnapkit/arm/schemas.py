"""Offline validation against the official ARM JSON schemas (Draft 4, a local subset of them).

The schema subset in `../shared/arm-schemas` lacks the per-type union that the deployment template schema
points at, so validation runs in two passes: the template shell against `deploymentTemplate.json` with its
`resource` definition narrowed to `resourceBase`, then every resource against its own provider schema,
picked by type and apiVersion. References to schema.management.azure.com resolve to local files only; any
other URI is refused, so validation never touches the network.
"""

from __future__ import annotations

import copy
import functools
import glob
import json
import os
from dataclasses import dataclass

import jsonschema
import jsonschema.validators
import referencing
import referencing.exceptions
from referencing.jsonschema import DRAFT4

SCHEMA_HOST = "https://schema.management.azure.com/schemas/"
TEMPLATE_SHELL = "2019-04-01/deploymentTemplate.json"
PARAMETERS_SCHEMA = "2019-04-01/deploymentParameters.json"
# Keys that only the deployment engine reads; provider schemas do not know them.
TEMPLATE_ONLY_KEYS = ("resources", "condition", "copy", "dependsOn", "comments")
DEFINITION_KINDS = (
    "resourceDefinitions",
    "subscription_resourceDefinitions",
    "extension_resourceDefinitions",
    "unknown_resourceDefinitions",
    "managementGroup_resourceDefinitions",
    "tenant_resourceDefinitions",
)
# Types with no provider schema in the subset, checked against a small local schema instead.
LOCAL_SCHEMAS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "local_schemas")


class SchemaDirError(Exception):
    """The schema folder is missing or incomplete."""


def default_schema_root() -> str:
    """`../shared/arm-schemas/schemas` relative to the repository root (overridable by ARM_SCHEMAS_DIR)."""
    env = os.environ.get("ARM_SCHEMAS_DIR")
    if env:
        return os.path.join(env, "schemas") if os.path.isdir(os.path.join(env, "schemas")) else env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.path.join(os.path.dirname(repo), "shared", "arm-schemas", "schemas")


@dataclass
class SchemaProblem:
    """One schema violation, located by a JSON path inside the checked document."""

    path: str
    message: str

    def __str__(self) -> str:
        return "%s: %s" % (self.path or "$", self.message)


def _json_path(parts) -> str:
    out = "$"
    for p in parts:
        out += "[%d]" % p if isinstance(p, int) else ".%s" % p
    return out


def _expression_tolerant_one_of(validator, one_of, instance, schema):
    """Draft 4 oneOf, except that an ARM expression may match the `expression` branch and another.

    Provider schemas write most properties as oneOf [<literal schema>, expression]. A name such as
    "[parameters('x')]" also satisfies the literal name pattern, so strict oneOf would reject every
    expression-valued name; the schema authors mean "either". Discriminator enums stay strict: an
    expression never satisfies an enum, so it still fails there.
    """
    errors = list(_DRAFT4_ONE_OF(validator, one_of, instance, schema))
    if (
        errors
        and isinstance(instance, str)
        and instance.startswith("[")
        and not instance.startswith("[[")
        and all("is valid under each of" in e.message for e in errors)
    ):
        return
    yield from errors


_DRAFT4_ONE_OF = jsonschema.Draft4Validator.VALIDATORS["oneOf"]
ArmDraft4Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"oneOf": _expression_tolerant_one_of})


def _leaves(errors) -> list:
    out = []
    for err in errors:
        out += _leaves(err.context) if err.context else [err]
    return out


def _branch_score(errors) -> tuple:
    """Rank one oneOf/anyOf branch: deepest errors first, then branches whose discriminator matched."""
    leaves = _leaves(errors)
    wrong_branch = any(e.validator == "enum" and len(e.validator_value) == 1 for e in leaves)
    return (max(len(e.absolute_path) for e in leaves), not wrong_branch, -len(leaves))


def deepest_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Follow oneOf/anyOf sub-errors into the branch that matched the document best, down to a leaf.

    The top-level message of a failed oneOf ("is not valid under any of the given schemas") names nothing.
    The best branch is the one whose errors reach deepest into the document, preferring one whose
    discriminator (a single-value enum) matched. An enum leaf lists every value any branch allows there.
    """
    every_leaf = _leaves([error])
    best = error
    while best.context:
        branches: dict = {}
        for sub in best.context:
            branch = sub.relative_schema_path[0] if sub.relative_schema_path else 0
            branches.setdefault(branch, []).append(sub)
        chosen = max(branches.values(), key=_branch_score)
        best = max(chosen, key=lambda e: _branch_score([e]))
    if best.validator == "enum":
        allowed = []
        for leaf in every_leaf:
            if leaf.validator == "enum" and list(leaf.absolute_path) == list(best.absolute_path):
                allowed += [v for v in leaf.validator_value if v not in allowed]
        best = jsonschema.ValidationError(
            "%r is not one of %r" % (best.instance, allowed),
            validator="enum",
            path=best.absolute_path,
            instance=best.instance,
        )
    return best


class SchemaStore:
    """Loads and caches local schema files and validates documents against them."""

    def __init__(self, root: str | None = None):
        self.root = root or default_schema_root()
        if not os.path.isfile(os.path.join(self.root, TEMPLATE_SHELL)):
            raise SchemaDirError(
                "ARM schema folder not found or incomplete: %s (expected %s in it; set "
                "ARM_SCHEMAS_DIR)" % (self.root, TEMPLATE_SHELL)
            )
        self._files: dict[str, dict] = {}
        self.registry = referencing.Registry(retrieve=self._retrieve)
        self._type_index: dict[tuple[str, str], str] | None = None

    # -- loading -----------------------------------------------------------------------------------
    def load(self, relpath: str) -> dict:
        if relpath not in self._files:
            path = os.path.normpath(os.path.join(self.root, relpath))
            if not path.startswith(os.path.normpath(self.root) + os.sep):
                raise referencing.exceptions.NoSuchResource(relpath)
            with open(path, encoding="utf-8-sig") as f:  # the files may carry a BOM
                self._files[relpath] = json.load(f)
        return self._files[relpath]

    def _retrieve(self, uri: str) -> referencing.Resource:
        if not uri.startswith(SCHEMA_HOST):
            raise referencing.exceptions.NoSuchResource(uri)  # refuse: never fetch anything else
        rel = uri[len(SCHEMA_HOST) :].split("#", 1)[0]
        try:
            contents = self.load(rel)
        except (OSError, ValueError) as exc:
            raise referencing.exceptions.NoSuchResource(uri) from exc
        return DRAFT4.create_resource(contents)

    @functools.cached_property
    def _shell_validator(self):
        shell = copy.deepcopy(self.load(TEMPLATE_SHELL))
        shell["definitions"]["resource"] = {"$ref": "#/definitions/resourceBase"}
        shell["id"] = SCHEMA_HOST + TEMPLATE_SHELL
        return ArmDraft4Validator(shell, registry=self.registry)

    @functools.cached_property
    def _parameters_validator(self):
        schema = copy.deepcopy(self.load(PARAMETERS_SCHEMA))
        schema["id"] = SCHEMA_HOST + PARAMETERS_SCHEMA
        return ArmDraft4Validator(schema, registry=self.registry)

    # -- lookup ------------------------------------------------------------------------------------
    def _build_type_index(self) -> dict[tuple[str, str], str]:
        index: dict[tuple[str, str], str] = {}
        for path in sorted(glob.glob(os.path.join(self.root, "*", "*.json"))):
            api = os.path.basename(os.path.dirname(path))
            rel = os.path.relpath(path, self.root)
            if api == "common" or os.path.basename(path).startswith("deployment"):
                continue
            doc = self.load(rel)
            for kind in DEFINITION_KINDS:
                for name, definition in (doc.get(kind) or {}).items():
                    tprop = (definition.get("properties") or {}).get("type") or {}
                    for t in list(tprop.get("enum") or []) + ([tprop["const"]] if "const" in tprop else []):
                        index.setdefault((t.lower(), api), "%s%s#/%s/%s" % (SCHEMA_HOST, rel, kind, name))
        return index

    @property
    def type_index(self) -> dict[tuple[str, str], str]:
        if self._type_index is None:
            self._type_index = self._build_type_index()
        return self._type_index

    def schema_ref(self, full_type: str, api_version: str) -> str | None:
        return self.type_index.get((full_type.lower(), api_version))

    def api_versions(self, full_type: str) -> list[str]:
        """Every apiVersion the subset has a schema for, for this type (sorted, oldest first)."""
        return sorted(api for (t, api) in self.type_index if t == full_type.lower())

    def local_schema(self, full_type: str) -> dict | None:
        path = os.path.join(LOCAL_SCHEMAS_DIR, full_type.replace("/", "_") + ".json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        return None

    # -- validation --------------------------------------------------------------------------------
    @staticmethod
    def _problems(validator, doc, prefix: str = "$") -> list[SchemaProblem]:
        out = []
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            deep = deepest_error(err)
            path = prefix + _json_path(deep.absolute_path)[1:]
            out.append(SchemaProblem(path, deep.message))
        return out

    def validate_shell(self, template: dict) -> list[SchemaProblem]:
        return self._problems(self._shell_validator, template)

    def validate_parameters_file(self, doc: dict) -> list[SchemaProblem]:
        return self._problems(self._parameters_validator, doc)

    def validate_resource(self, resource: dict, full_type: str, where: str) -> list[SchemaProblem]:
        api = resource.get("apiVersion")
        body = {k: v for k, v in resource.items() if k not in TEMPLATE_ONLY_KEYS}
        body["type"] = full_type
        ref = self.schema_ref(full_type, str(api))
        if ref is None:
            local = self.local_schema(full_type)
            if local is None:
                known = ", ".join(self.api_versions(full_type)) or "none"
                return [
                    SchemaProblem(where, "no schema found for %s@%s (schemas exist for: %s)" % (full_type, api, known))
                ]
            validator = ArmDraft4Validator(local, registry=self.registry)
        else:
            validator = ArmDraft4Validator({"$ref": ref}, registry=self.registry)
        try:
            return self._problems(validator, body, where)
        except referencing.exceptions.Unresolvable as exc:
            return [SchemaProblem(where, "schema reference could not be resolved locally: %s" % exc)]
