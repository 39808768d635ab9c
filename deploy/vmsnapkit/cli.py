"""The `vmsnapkit` console command: parse, run one handler, print its result the az way, exit with its code.

Errors reach the user as one line (`ERROR: ...`) and an exit code from errors.py; a traceback is shown
only with --debug. Output is printed only after the command succeeded, so nothing is half-written.
"""

import argparse
import importlib
import logging
import sys

from . import __version__
from .commands import COMMANDS, GROUP_HELP
from .errors import EXIT_INTERRUPTED, EXIT_SERVICE, EXIT_USAGE, KitError, translate


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"ERROR: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser():
    from .arguments import global_arguments

    parser = _Parser(
        prog="vmsnapkit",
        description="Verify and enable Azure VM snapshot extension and backup state across fleets of VMs.",
    )
    parser.add_argument("--version", action="version", version=f"vmsnapkit {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    top.add_parser(
        "templates",
        help="generate, check, validate or expand the ARM templates (vmsnapkit templates --help)",
        add_help=False,
    )
    groups = {}
    for cmd in COMMANDS:
        parent = top
        if len(cmd.words) > 1:
            group = cmd.words[0]
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP.get(group, ""), description=GROUP_HELP.get(group, ""))
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
                gp.set_defaults(group_parser=gp)
            parent = groups[group]
        p = parent.add_parser(cmd.words[-1], help=cmd.help, description=cmd.help)
        for add in cmd.argument_groups:
            add(p)
        global_arguments(p)
        p.set_defaults(handler=cmd.handler)
    return parser


def main(argv=None, credential=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["templates"]:  # the ARM template tool keeps its own parser (vmsnapkit.arm)
        from .arm.__main__ import main as templates_main

        return templates_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    if not args.debug:
        # azure-identity logs each failed credential at WARNING; the kit reports the failure itself, once.
        logging.getLogger("azure").setLevel(logging.CRITICAL)
    from .context import Context
    from .output import render

    ctx = Context(args, credential=credential)
    try:
        module, func = args.handler.split(":")
        handler = getattr(importlib.import_module(f"vmsnapkit.{module}"), func)
        result = handler(ctx)
        text = render(result.rows, args.output, args.query, result.columns, color=args.output == "jsonc")
    except KitError as exc:
        sys.stderr.write(f"ERROR: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ERROR: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        err = translate(exc)
        if args.debug:
            raise
        if err is not None:
            sys.stderr.write(f"ERROR: {err.message}\n")
            return err.exit_code
        sys.stderr.write(
            f"ERROR: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            " (run with --debug for details)\n"
        )
        return EXIT_SERVICE
    sys.stdout.write(text)
    sys.stdout.flush()
    if result.summary:
        sys.stderr.write(result.summary + "\n")
    return result.exit_code


def run():
    sys.exit(main())
