"""Which VM this is: the Role guid of the agent's HostingEnvironmentConfig.xml.

A VM restored from a backup or cloned keeps the extension's state files (mrseq, task identity) but gets
a new Role guid. When the guid differs from the one remembered, that state belongs to another VM and is
forgotten, so the new VM's first job is not skipped as "already processed".
"""

import logging
import xml.etree.ElementTree as ET

log = logging.getLogger(__name__)
MAX_BYTES = 1024 * 1024


def role_guid(path):
    """The `guid` attribute of the first <Role> element, or None (file missing or unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES)
        root = ET.fromstring(data)
    except (IOError, OSError, ET.ParseError, ValueError):
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Role" and element.get("guid"):
            return element.get("guid").strip().lower()[:64]
    return None


def forget_other_vm(state, path):
    """Reset mrseq and the task identity when this is a different VM than last time. True when reset."""
    guid = role_guid(path)
    if not guid:
        return False
    known = state.vm_guid()
    if known == guid:
        return False
    if known:
        log.info("Role guid changed (%s -> %s): a restored or cloned VM; sequence and task state reset", known, guid)
        state.forget_jobs()
    state.set_vm_guid(guid)
    return bool(known)
