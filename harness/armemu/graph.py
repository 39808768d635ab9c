"""Resource Graph `POST /providers/Microsoft.ResourceGraph/resources`.

KQL is not evaluated. The emulator recognises the query shapes the kit sends (VM-with-extension rows,
optionally left-joined with the VM's protected item, and protected-item rows) and the filters the kit
appends, and computes those rows from the estate; anything else is a 400 so a changed query cannot pass
silently. Paging follows the service: `options.$top` (at most `graph_max_top`), `$skipToken` while rows
remain, rows in a stable order.

String literals are read as KQL reads them ('...' or "..." with backslash escapes; `//` comments outside
them dropped) before any filter is matched, so a value holding quotes, backslashes, `|` or `//` is one
literal, and an unterminated literal is a 400 ParserFailure as in the service.

Filters understood: `tolower(id) in~ ('...')`, `resourceGroup in~ ('...')`, `tags['k'] =~ 'v'`, and in the
extension join `properties.publisher) in~ (...)` / `properties.type) in~ (...)`.
"""

import base64
import hashlib
import json
import re

from .router import arm_error, json_response
from .state import iso

# A literal in the parsed query: its index between two NULs (NUL cannot occur in KQL text).
_LIT = r"\x00(\d+)\x00"
_LIST = r"\(\s*((?:" + _LIT + r"\s*,?\s*)*)\)"
_TOKEN = re.compile(r"(?P<lit>'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")|(?P<comment>//[^\n]*)", re.DOTALL)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}


class KqlSyntaxError(ValueError):
    pass


class Parsed:
    """A query split as KQL reads it: `code` with each string literal replaced by a numbered marker, the
    literals' values, and `text` (the query without comments) for recognising its shape."""

    def __init__(self, query):
        self.literals = []
        self.text = _TOKEN.sub(lambda m: "" if m["comment"] else m[0], query)
        self.code = _TOKEN.sub(self._mark, query)
        if "'" in self.code or '"' in self.code:
            raise KqlSyntaxError("unterminated string literal")

    def _mark(self, m):
        if m["comment"]:
            return ""
        body = m["lit"][1:-1]
        self.literals.append(re.sub(r"\\(.)", lambda e: _UNESCAPE.get(e[1], e[1]), body, flags=re.DOTALL))
        return f"\x00{len(self.literals) - 1}\x00"

    def strings(self, text):
        """The values (lower case) of the literals marked in a piece of `code`."""
        return [self.literals[int(n)].lower() for n in re.findall(_LIT, text)]


def _vm_filters(parsed):
    """Predicates on VMs from the kit's where-clauses."""
    preds = []
    code = parsed.code
    m = re.search(r"tolower\(id\)\s+in~\s+" + _LIST, code, re.IGNORECASE)
    if m:
        ids = set(parsed.strings(m.group(1)))
        preds.append(lambda vm: vm.id.lower() in ids)
    m = re.search(r"\bresourceGroup\s+in~\s+" + _LIST, code, re.IGNORECASE)
    if m:
        rgs = set(parsed.strings(m.group(1)))
        preds.append(lambda vm: vm.resource_group.lower() in rgs)
    for key, value in re.findall(r"tags\[\s*" + _LIT + r"\s*\]\s*=~\s*" + _LIT, code, re.IGNORECASE):
        preds.append(_tag_predicate(parsed.literals[int(key)].lower(), parsed.literals[int(value)].lower()))
    return preds


def _tag_predicate(key, value):
    return lambda vm: any(tk.lower() == key and tv.lower() == value for tk, tv in vm.tags.items())


def _extension_filter(parsed):
    pubs = re.search(r"properties\.publisher\)\s+in~\s+" + _LIST, parsed.code, re.IGNORECASE)
    types = re.search(r"properties\.type\)\s+in~\s+" + _LIST, parsed.code, re.IGNORECASE)
    pubs = set(parsed.strings(pubs.group(1))) if pubs else None
    types = set(parsed.strings(types.group(1))) if types else None
    return lambda e: (pubs is None or e.publisher.lower() in pubs) and (types is None or e.type.lower() in types)


def vm_extension_rows(est, subs, parsed):
    preds, keep = _vm_filters(parsed), _extension_filter(parsed)
    rows = []
    for vm in est.vms.values():
        if vm.subscription.lower() not in subs or not all(p(vm) for p in preds):
            continue
        base = {
            "vmId": vm.id.lower(),
            "vmName": vm.name,
            "resourceGroup": vm.resource_group.lower(),
            "subscriptionId": vm.subscription,
            "location": vm.location,
            "tags": dict(vm.tags),
            "powerState": f"PowerState/{vm.power_state}",
        }
        exts = [e for e in vm.extensions if keep(e)]
        for e in exts or [None]:
            row = dict(base)
            row.update(
                {
                    "extName": e.name if e else "",
                    "publisher": e.publisher if e else "",
                    "extType": e.type if e else "",
                    "version": e.version if e else "",
                    "state": e.provisioning_state if e else "",
                    "autoUpgradeMinorVersion": e.auto_upgrade if e else None,
                }
            )
            rows.append(row)
    rows.sort(key=lambda r: (r["vmId"], r["extName"].lower()))
    return rows


def protected_item_rows(est, subs, parsed):
    preds = _vm_filters(parsed)
    rows = []
    for v in est.vaults.values():
        if v.subscription.lower() not in subs:
            continue
        for it in v.items.values():
            if not all(p(it.vm) for p in preds):
                continue
            item_id = (
                f"{v.id}/backupFabrics/Azure/protectionContainers/{it.vm.container_name}"
                f"/protectedItems/{it.vm.item_name}"
            )
            rows.append(
                {
                    "itemId": item_id,
                    "vaultId": v.id.lower(),
                    "vmId": it.vm.id.lower(),
                    "protectionState": it.protection_state,
                    "healthStatus": it.health_status,
                    "lastBackupStatus": it.last_backup_status or "",
                    "lastBackupTime": iso(it.last_backup_time) or "",
                    "policyName": it.policy_id.rsplit("/", 1)[-1],
                }
            )
    rows.sort(key=lambda r: r["itemId"].lower())
    return rows


def _rows(est, subs, parsed):
    """All rows of a recognised query shape (None for any other query)."""
    q = parsed.text
    if (
        re.search(r"^\s*Resources\b", q)
        and "virtualmachines/extensions" in q.lower()
        and re.search(r"join\s+kind=leftouter\s*\(\s*RecoveryServicesResources", q, re.IGNORECASE)
    ):
        return vm_rows_with_protection(est, subs, parsed)
    if re.search(r"^\s*RecoveryServicesResources\b", q) and "protecteditems" in q.lower():
        return protected_item_rows(est, subs, parsed)
    if re.search(r"^\s*Resources\b", q) and "microsoft.compute/virtualmachines/extensions" in q.lower():
        return vm_extension_rows(est, subs, parsed)
    return None


def vm_rows_with_protection(est, subs, parsed):
    """The VM-extension rows left-joined with the VM's protected item: one query for both halves."""
    items = {r["vmId"]: r for r in protected_item_rows(est, subs, Parsed(""))}
    empty = {
        k: ""
        for k in (
            "itemId",
            "vaultId",
            "protectionState",
            "healthStatus",
            "lastBackupStatus",
            "lastBackupTime",
            "policyName",
        )
    }
    out = []
    for row in vm_extension_rows(est, subs, parsed):
        item = items.get(row["vmId"])
        out.append(dict(row, **({k: v for k, v in item.items() if k != "vmId"} if item else empty)))
    return out


def _token(offset, fingerprint):
    return base64.b64encode(json.dumps({"o": offset, "f": fingerprint}).encode()).decode()


def register(router):
    @router.route("POST", "/providers/Microsoft.ResourceGraph/resources")
    def resources(req):
        body = req.body or {}
        query = str(body.get("query") or "")
        subs = {s.lower() for s in body.get("subscriptions") or []}
        options = body.get("options") or {}
        est = req.emu.estate
        try:
            parsed = Parsed(query)
        except KqlSyntaxError as exc:
            return arm_error(400, "ParserFailure", f"The query could not be parsed: {exc}.")
        fingerprint = hashlib.sha1((parsed.text + "|" + ",".join(sorted(subs))).encode()).hexdigest()[:12]
        cache = req.emu.ops.setdefault("graph-rows", {})  # paging a query must not recompute its rows
        with est.lock:
            rows = cache.get((fingerprint, est.generation))
            if rows is None:
                rows = _rows(est, subs, parsed)
                if rows is None:
                    return arm_error(
                        400,
                        "BadRequest",
                        "armemu evaluates only the kit's Resource Graph query shapes "
                        "(VM extension join, protected items).",
                    )
                cache.clear()
                cache[(fingerprint, est.generation)] = rows
        start = 0
        tok = options.get("$skipToken")
        if tok:
            try:
                parsed = json.loads(base64.b64decode(tok))
                start = int(parsed["o"])
                if parsed["f"] != fingerprint:
                    raise ValueError("token of another query")
            except (ValueError, KeyError, TypeError):
                return arm_error(400, "InvalidSkipToken", "The skip token is not valid for this query.")
        top = min(int(options.get("$top") or 100), int(req.emu.knobs.graph_max_top))
        page = rows[start : start + top]
        out = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "facets": [],
            "data": page,
        }
        if start + top < len(rows):
            out["$skipToken"] = _token(start + top, fingerprint)
        return json_response(out)
