"""`python -m vmsnapkit.arm generate|check|validate`: the templates' command line.

generate   write arm-templates/*/ from the description (what `make templates` runs)
check      exit 1 when the committed templates differ from what generate would write
validate   check template and parameters files against the ARM schemas and the reviewer's rules
expand     list the resources a template would deploy with given parameters (offline, no Azure)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from . import generate
from .description import TEMPLATES_DIR


def _all_template_files(root: str) -> list[str]:
    out = []
    for name in sorted(os.listdir(root)):
        for fname in (generate.TEMPLATE_FILE, generate.PARAMETERS_FILE):
            path = os.path.join(root, name, fname)
            if os.path.isfile(path):
                out.append(path)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vmsnapkit.arm",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write the templates from the description")
    g.add_argument("--out", default=TEMPLATES_DIR, help="output folder (default: %(default)s)")
    c = sub.add_parser("check", help="fail when committed templates are stale")
    c.add_argument("--out", default=TEMPLATES_DIR)
    v = sub.add_parser("validate", help="validate template / parameters files (default: all kit templates)")
    v.add_argument("files", nargs="*", help="azuredeploy.json or *.parameters*.json files")
    v.add_argument(
        "--schemas", help="ARM schema folder (default: ../shared/arm-schemas from the repo root, or ARM_SCHEMAS_DIR)"
    )
    v.add_argument("--today", help="date for the apiVersion age rule (YYYY-MM-DD; default: today)")
    v.add_argument("-o", "--output", choices=("text", "json"), default="text")
    e = sub.add_parser("expand", help="list the resources a deployment would create (offline)")
    e.add_argument("template", help="azuredeploy.json (or a kit template name)")
    e.add_argument("-p", "--parameters", help='parameters file ({"parameters": {name: {"value": ...}}})')
    e.add_argument("--subscription", default="00000000-0000-0000-0000-000000000000")
    e.add_argument("-g", "--resource-group", default="rg")
    e.add_argument("--summary", action="store_true", help="counts per type and policy only")
    args = parser.parse_args(argv)
    if args.command == "expand":
        return _expand(args)

    if args.command == "generate":
        for path in generate.write(args.out):
            print("wrote %s" % os.path.relpath(path))
        return 0
    if args.command == "check":
        stale = generate.stale(args.out)
        for path in stale:
            print("stale: %s (run `make templates`)" % os.path.relpath(path), file=sys.stderr)
        return 1 if stale else 0

    from .schemas import SchemaDirError  # these import jsonschema; keep generate/check light
    from .validate import Validator

    try:
        today = datetime.date.fromisoformat(args.today) if args.today else None
    except ValueError:
        parser.error("--today must be YYYY-MM-DD, got %r" % args.today)
    try:
        validator = Validator(args.schemas, today)
    except SchemaDirError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    files = args.files or _all_template_files(TEMPLATES_DIR)
    findings = []
    for path in files:
        findings += validator.check_file(path)
    if args.output == "json":
        print(json.dumps({"files": files, "findings": [f.__dict__ for f in findings]}, indent=2))
    else:
        for f in findings:
            print(f)
        print("%d file(s) checked, %d problem(s)" % (len(files), len(findings)), file=sys.stderr)
    return 1 if findings else 0


def _expand(args) -> int:
    from .expand import Context, ExpandError, expand

    path = args.template
    if not os.path.isfile(path):
        path = os.path.join(TEMPLATES_DIR, args.template, generate.TEMPLATE_FILE)
    try:
        with open(path, encoding="utf-8-sig") as f:
            template = json.load(f)
        given = {}
        if args.parameters:
            with open(args.parameters, encoding="utf-8-sig") as f:
                given = {
                    k: v.get("value")
                    for k, v in json.load(f).get("parameters", {}).items()
                    if isinstance(v, dict) and "value" in v
                }
        resources = expand(template, given, Context(args.subscription, args.resource_group))
    except (OSError, ValueError) as exc:
        print("error: cannot read input: %s" % exc, file=sys.stderr)
        return 2
    except ExpandError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    if args.summary:
        by_type: dict = {}
        by_policy: dict = {}
        for r in resources:
            by_type[r.type] = by_type.get(r.type, 0) + 1
            policy = (r.body.get("properties") or {}).get("policyId") if isinstance(r.body, dict) else None
            if isinstance(policy, str):
                by_policy[policy.rsplit("/", 1)[-1]] = by_policy.get(policy.rsplit("/", 1)[-1], 0) + 1
        print(json.dumps({"resources": by_type, "protectedItemsPerPolicy": by_policy}, indent=2))
    else:
        print(
            json.dumps(
                [{"id": r.id, "type": r.type, "apiVersion": r.api_version, "body": r.body} for r in resources], indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
