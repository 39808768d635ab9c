"""Command-line entry: `python3 -m vmsnapshot <command>` (the launcher bin/handle.sh runs this).

Agent commands: install, enable, disable, uninstall, update. Operator commands: diagnose [--json],
version. Internal: supervise and worker (started by enable). Any failure ends in a clear message, never a traceback.
"""

import sys

USAGE = """usage: vmsnapshot <command> [options]

Agent commands (run by the Azure Linux guest agent from the handler directory):
  install      prepare state and the default configuration (no network)
  enable       validate the settings of ConfigSequenceNumber and start the snapshot job
  disable      stop a running job; file systems are thawed before it returns
  uninstall    stop a running job and remove the extension's state (configuration is kept)
  update       carry state over from the previous version during an upgrade

Operator commands:
  diagnose [--json] [--offline] [--handler-dir DIR]
               interpreter, openssl, certificates, configuration, freeze plan, status blob
               reachability; never freezes and never prints a secret. Outside the agent it looks
               at the newest installed handler under /var/lib/waagent
  snapshot --settings FILE [--status-dir DIR] [--seq N]
               run one snapshot job in the foreground outside the agent; FILE (mode 0600) holds
               {"publicSettings": {...}, "protectedSettings": {...}} in clear text
  version      print the extension version

Environment: VMSNAPSHOT_CONFIG overrides /etc/azure/vmbackup.conf.
"""


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0].lstrip("-"), argv[1:]
    try:
        if command == "diagnose":
            from . import diagnose

            return diagnose.main(rest)
        if command == "version":
            from . import identity

            print(identity.VERSION)
            return 0
        from . import commands

        handler = {
            "install": commands.install,
            "enable": commands.enable,
            "disable": commands.disable,
            "uninstall": commands.uninstall,
            "update": commands.update,
            "worker": commands.worker,
            "supervise": commands.supervise,
            "snapshot": commands.snapshot,
        }.get(command)
        if handler is None:
            sys.stderr.write("vmsnapshot: unknown command %r\n%s" % (command, USAGE))
            return 2
        return handler(rest)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # last resort: a clear one-line error, never a traceback or a secret
        from .redact import redact

        sys.stderr.write("vmsnapshot %s failed: %s: %s\n" % (command, type(e).__name__, redact(str(e))[:500]))
        return 1


if __name__ == "__main__":
    sys.exit(main())
