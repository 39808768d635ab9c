#!/bin/sh
# Launcher named by HandlerManifest.json: finds a Python >= 3.6 the way real distros provide one and
# runs the runtime with it. When none exists it still writes a valid error status, so the guest agent
# reports a clear error instead of waiting for a status that never comes.
# Usage: bin/handle.sh install|uninstall|update|enable|disable|diagnose [args]

cmd="${1:-}"
here=$(cd "$(dirname "$0")/.." && pwd)

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 6) else 1)' >/dev/null 2>&1
}

find_python() {
    if [ -n "${VMSNAPSHOT_PYTHON:-}" ] && python_ok "$VMSNAPSHOT_PYTHON"; then
        echo "$VMSNAPSHOT_PYTHON"; return 0
    fi
    for dir in /usr/bin /usr/local/bin; do
        [ -x "$dir/python3" ] && python_ok "$dir/python3" && { echo "$dir/python3"; return 0; }
    done
    [ -x /usr/libexec/platform-python ] && python_ok /usr/libexec/platform-python && {
        echo /usr/libexec/platform-python; return 0; }
    # Versioned names, newest first: a broken old interpreter must never win over a good new one.
    for minor in 20 19 18 17 16 15 14 13 12 11 10 9 8 7 6; do
        for dir in /usr/bin /usr/local/bin; do
            p="$dir/python3.$minor"
            [ -x "$p" ] && python_ok "$p" && { echo "$p"; return 0; }
        done
    done
    p=$(command -v python3 2>/dev/null) && python_ok "$p" && { echo "$p"; return 0; }
    return 1
}

write_no_python_status() {
    # Only enable reports a status; the other commands just fail with a clear message.
    seq="${ConfigSequenceNumber:-0}"
    case "$seq" in ''|*[!0-9]*) seq=0 ;; esac
    mkdir -p "$here/status"
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    tmp="$here/status/$seq.status.tmp.$$"
    rm -f "$tmp"
    # noclobber: the temp file is created exclusively (O_EXCL), never written through a planted symlink
    (umask 077; set -C; printf '[{"version": "1.0", "timestampUTC": "%s", "status": {"name": "VMSnapshotLinux", "operation": "Enable", "status": "error", "code": 2, "formattedMessage": {"lang": "en-US", "message": "No Python 3.6 or later found (tried python3, /usr/libexec/platform-python, python3.N in /usr/bin and /usr/local/bin). Install python3 and retry the backup."}}}]\n' "$now" > "$tmp") && mv -f "$tmp" "$here/status/$seq.status"
}

py=$(find_python)
if [ -z "$py" ]; then
    echo "vmsnapshot: no Python >= 3.6 found" >&2
    [ "$cmd" = enable ] && write_no_python_status
    exit 52
fi
cd "$here" || exit 1
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -B -m vmsnapshot "$@"
