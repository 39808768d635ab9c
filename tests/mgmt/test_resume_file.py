"""The resume file survives a kill at any byte: a torn last line is ignored, anything else is refused."""

import pytest
from vmsnapkit.errors import KitError
from vmsnapkit.resume import ResumeFile


def test_records_survive_and_a_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "r.jsonl"
    r = ResumeFile(str(path))
    r.record_refresh("/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/V1")
    r.record_enabled("/subscriptions/s/.../vm1", "/subscriptions/s/.../vaults/v1", "DefaultPolicy")
    r.record_failed("/subscriptions/s/.../vm2", "UserErrorX: boom")
    r.close()
    with open(path, "a") as f:
        f.write('{"event": "enabled", "vm": "/subscriptions/s/.../vm3", "va')  # killed mid-write
    again = ResumeFile(str(path))
    assert set(again.enabled) == {"/subscriptions/s/.../vm1"}
    vault = "/subscriptions/s/resourcegroups/rg/providers/microsoft.recoveryservices/vaults/v1"
    assert again.refreshed == {vault}


def test_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(KitError, match="line 1 is not a resume record"):
        ResumeFile(str(path))
