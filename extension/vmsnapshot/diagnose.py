"""`diagnose`: what a user runs first when a backup fails, and what every test that could freeze runs first.

It reports the interpreter, openssl, the certificates for the current settings, the configuration in
effect, the freeze plan (what would be frozen and why everything else is skipped) and whether the
status blob is reachable. It never freezes, never writes, and never prints a secret.
"""

import json
import os
import platform
import sys

from . import agentcontract, config, handlerenv, identity, mounts, protected, settings, workload
from .commands import cert_dir
from .redact import strip_query


def collect(check_network=True, lib_dir="/var/lib/waagent"):
    out = {
        "extension": {"handler": identity.HANDLER_NAME, "version": identity.VERSION},
        "python": {"executable": sys.executable, "version": platform.python_version()},
        "problems": [],
    }
    problems = out["problems"]
    openssl = protected.openssl_binary()
    out["openssl"] = openssl or None
    if not openssl:
        problems.append("openssl is not installed: protected settings cannot be decrypted")
    henv = handlerenv.load(find_handler_dir(lib_dir))
    out["handler"] = {
        "base_dir": henv.base_dir,
        "log_dir": henv.log_dir,
        "config_dir": henv.config_dir,
        "status_dir": henv.status_dir,
        "events_dir": henv.events_dir,
    }
    try:
        cfg = config.load()
        out["config"] = cfg.to_dict()
    except config.ConfigError as e:
        problems.append(str(e))
        cfg = config.defaults()
        out["config"] = dict(cfg.to_dict(), error=str(e))
    plan = mounts.plan_freeze(mounts.read_mountinfo(), include=cfg.mounts_to_include, skip=cfg.mounts_to_skip)
    plan_doc = plan.to_dict()
    plan_doc["fsfreeze"] = cfg.fsfreeze
    plan_doc["would_freeze"] = [m.mountpoint for m in plan.selected] if cfg.fsfreeze else []
    out["freeze_plan"] = plan_doc
    out["workload"] = workload.describe(cfg)
    if out["workload"].get("ok") is False:
        problems.append("database branch: code %s: %s" % (out["workload"]["code"], out["workload"]["error"]))
    seq = handlerenv.current_seq(henv)
    cert = {"sequence": seq, "settings_file": henv.settings_file(seq)}
    out["settings"] = cert
    try:
        handler = settings.read_settings_file(henv.settings_file(seq))
        thumb = handler.get("protectedSettingsCertThumbprint")
        cert["thumbprint"] = thumb
        if thumb:
            crt, prv = protected.key_files(cert_dir(henv, cfg), str(thumb))
            cert["certificate"], cert["certificate_found"] = crt, os.path.isfile(crt)
            cert["private_key"], cert["private_key_found"] = prv, os.path.isfile(prv)
            if not (cert["certificate_found"] and cert["private_key_found"]):
                problems.append("certificate or key for thumbprint %s not found" % thumb)
        out["snapshot_method"] = _snapshot_method(handler, cfg, henv, seq)
        if check_network:
            out["status_blob"] = _probe_status_blob(handler, cfg, henv)
    except settings.SettingsError as e:
        cert["error"] = e.message
    return out


def find_handler_dir(lib_dir="/var/lib/waagent"):
    """The handler directory to diagnose: the agent's (env), the current one, else the newest installed."""
    if os.environ.get(agentcontract.ENV_EXTENSION_PATH) or os.path.exists("HandlerEnvironment.json"):
        return None
    import glob

    found = glob.glob(os.path.join(lib_dir, identity.HANDLER_NAME + "-*", "HandlerEnvironment.json"))
    if not found:
        return None
    return os.path.dirname(max(found, key=os.path.getmtime))


def _snapshot_method(handler, cfg, henv, seq):
    """The path the current settings would take, and why (no network: presnapshot decides at job time)."""
    out = {"host_endpoint": cfg.host_endpoint}
    try:
        private = settings.decrypt_protected(handler, cert_dir(henv, cfg))
        spec = settings.validate(
            seq,
            handler.get("publicSettings"),
            private,
            deadline_minutes=cfg.command_deadline_minutes,
            config_method=cfg.snapshot_method,
        )
        out.update(method=spec.method, reason=spec.method_reason)
    except settings.SettingsError as e:
        out.update(method=None, error="%s (code %s)" % (e.message, e.code))
    return out


def _probe_status_blob(handler, cfg, henv):
    from .storage import StorageClient, StorageError

    public = handler.get("publicSettings") or {}
    uri = public.get("statusBlobUri") if isinstance(public, dict) else None
    try:
        if not uri:
            private = settings.decrypt_protected(handler, cert_dir(henv, cfg))
            uri = private.get("statusBlobUri")
    except settings.SettingsError as e:
        return {"reachable": None, "error": e.message}
    if not uri:
        return {"reachable": None, "error": "no statusBlobUri in the settings"}
    try:
        resp = StorageClient(timeout=5.0, waagent_conf=cfg.waagent_conf).request("HEAD", uri, max_attempts=1)
        return {"uri": strip_query(uri), "reachable": True, "http_status": resp.status}
    except StorageError as e:
        if e.status is not None:  # the service answered, if only with an error
            return {"uri": strip_query(uri), "reachable": True, "http_status": e.status}
        return {"uri": strip_query(uri), "reachable": False, "error": str(e)}


def render_text(doc):
    lines = [
        "vmsnapshot %s (%s)" % (doc["extension"]["version"], doc["extension"]["handler"]),
        "python: %s %s" % (doc["python"]["executable"], doc["python"]["version"]),
        "openssl: %s" % (doc["openssl"] or "NOT FOUND"),
        "config: %s (%s)" % (doc["config"]["path"], "present" if doc["config"]["present"] else "defaults"),
        "fsfreeze: %s" % doc["freeze_plan"]["fsfreeze"],
        "freeze plan:",
    ]
    for entry in doc["freeze_plan"]["selected"]:
        lines.append("  FREEZE %s (%s %s)" % (entry["mountpoint"], entry["fstype"], entry["devno"]))
    for entry in doc["freeze_plan"]["skipped"]:
        lines.append("  skip   %s (%s): %s" % (entry["mountpoint"], entry["fstype"], entry["reason"]))
    wl = doc.get("workload") or {}
    if wl.get("configured"):
        what = wl.get("workload") or {}
        lines.append(
            "database: %s via %s: %s"
            % (
                wl.get("engine") or what.get("workload_name", "?"),
                wl["config_path"],
                "reachable, %s %s, would: %s" % (wl.get("version"), wl.get("role"), wl.get("would_do"))
                if wl.get("ok")
                else "NOT usable: %s" % wl.get("error"),
            )
        )
        if wl.get("warning"):
            lines.append("WARNING: %s" % wl["warning"])
    else:
        lines.append("database: none (%s)" % wl.get("config_path"))
    s = doc["settings"]
    lines.append("settings: seq %s %s" % (s["sequence"], s.get("error") or "ok"))
    if "snapshot_method" in doc:
        m = doc["snapshot_method"]
        lines.append(
            "snapshot method: %s (%s); host endpoint %s"
            % (m.get("method"), m.get("reason") or m.get("error"), m["host_endpoint"])
        )
    if "status_blob" in doc:
        lines.append("status blob: %s" % json.dumps(doc["status_blob"]))
    for p in doc["problems"]:
        lines.append("PROBLEM: %s" % p)
    return "\n".join(lines)


def main(argv):
    if "--handler-dir" in argv and argv.index("--handler-dir") + 1 < len(argv):
        os.environ[agentcontract.ENV_EXTENSION_PATH] = argv[argv.index("--handler-dir") + 1]
    as_json = "--json" in argv
    doc = collect(check_network="--offline" not in argv)
    print(json.dumps(doc, indent=2, sort_keys=True) if as_json else render_text(doc))
    return 1 if doc["problems"] else 0
