#!/usr/bin/env bash
# Deploy (or preview) one of the kit's ARM templates with az: validate offline first, then create/what-if.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
TEMPLATES_DIR=${TEMPLATES_DIR:-$(cd "$SCRIPT_DIR/../.." && pwd)/arm-templates}
PYTHON=${PYTHON:-python3}

usage() {
  cat <<EOT
Usage: ${0##*/} create|what-if|validate TEMPLATE [-g RG | -l LOCATION] [options] [-- AZ-ARGS...]

TEMPLATE is enable-backup, vm-snapshot-extension, backup-policy-at-scale, or a path
to an azuredeploy.json. Resource-group templates need -g; backup-policy-at-scale is a
subscription deployment and needs -l (the deployment's location).

  create      az deployment group|sub create
  what-if     az deployment group|sub what-if (shows the changes, deploys nothing)
  validate    az deployment group|sub validate (server-side validation)

Options:
  -g, --resource-group RG     target resource group (resource-group templates)
  -l, --location LOCATION     deployment location (subscription templates)
  -p, --parameters FILE       parameters file (passed as @FILE)
  --param NAME=VALUE          one parameter (repeatable; VALUE may be JSON)
  -n, --name NAME             deployment name (default: kit-TEMPLATE-<timestamp>)
  --subscription SUB          subscription (default: az's current one)
  --no-offline-check          skip the kit's offline schema/reviewer check
  --dry-run                   print the az command instead of running it
  -h, --help                  this help
Anything after -- goes to az unchanged (e.g. -- --no-wait).

The offline check runs 'python -m vmsnapkit.arm validate' when the kit's Python package
is importable (set PYTHON to pick the interpreter). Works under any az cloud.
EOT
}

[ $# -gt 0 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
ACTION=$1; shift
case "$ACTION" in create|what-if|validate) ;; *) die "first argument must be create, what-if or validate" ;; esac
[ $# -gt 0 ] || die "which template? (enable-backup, vm-snapshot-extension, backup-policy-at-scale or a path)"
TEMPLATE=$1; shift
if [ -f "$TEMPLATE" ]; then TEMPLATE_FILE=$TEMPLATE
elif [ -f "$TEMPLATES_DIR/$TEMPLATE/azuredeploy.json" ]; then TEMPLATE_FILE=$TEMPLATES_DIR/$TEMPLATE/azuredeploy.json
else die "no such template: $TEMPLATE (looked in $TEMPLATES_DIR)"
fi

RG="" LOCATION="" PARAM_FILE="" PARAMS=() NAME="" OFFLINE=yes DRY_RUN=no EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -g|--resource-group) [ $# -ge 2 ] || die "$1 needs a value"; RG=$2; shift 2 ;;
    -l|--location) [ $# -ge 2 ] || die "$1 needs a value"; LOCATION=$2; shift 2 ;;
    -p|--parameters) [ $# -ge 2 ] || die "$1 needs a file"; [ -r "$2" ] || die "cannot read parameters file: $2"
      PARAM_FILE=$2; shift 2 ;;
    --param) [ $# -ge 2 ] || die "$1 needs NAME=VALUE"; case "$2" in *=*) ;; *) die "--param wants NAME=VALUE" ;; esac
      PARAMS+=("$2"); shift 2 ;;
    -n|--name) [ $# -ge 2 ] || die "$1 needs a value"; NAME=$2; shift 2 ;;
    --subscription) [ $# -ge 2 ] || die "$1 needs a value"; SUBSCRIPTION_ARGS=(--subscription "$2"); shift 2 ;;
    --no-offline-check) OFFLINE=no; shift ;;
    --dry-run) DRY_RUN=yes; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

# Subscription-scope templates say so in their $schema.
if grep -q 'subscriptionDeploymentTemplate.json' "$TEMPLATE_FILE"; then
  SCOPE=sub
  [ -n "$LOCATION" ] || die "$TEMPLATE is a subscription deployment: give -l LOCATION"
  [ -z "$RG" ] || die "$TEMPLATE is a subscription deployment: -g does not apply"
  SCOPE_ARGS=(--location "$LOCATION")
else
  SCOPE=group
  [ -n "$RG" ] || die "$TEMPLATE deploys into a resource group: give -g RG"
  SCOPE_ARGS=(--resource-group "$RG")
fi
[ -n "$NAME" ] || NAME="kit-$(basename "$(dirname "$TEMPLATE_FILE")")-$(date -u +%Y%m%d%H%M%S)"

if [ "$OFFLINE" = yes ]; then
  files=("$TEMPLATE_FILE")
  [ -z "$PARAM_FILE" ] || files+=("$PARAM_FILE")
  if "$PYTHON" -c 'import vmsnapkit.arm.validate' 2>/dev/null; then
    "$PYTHON" -m vmsnapkit.arm validate "${files[@]}" >&2 || die "offline check failed (use --no-offline-check to skip)"
  else
    log "offline check skipped: the kit's Python package (vmsnapkit, with jsonschema) is not importable by $PYTHON"
  fi
fi

CMD=("$AZ" deployment "$SCOPE" "$ACTION" --name "$NAME" "${SCOPE_ARGS[@]}" --template-file "$TEMPLATE_FILE")
[ -z "$PARAM_FILE" ] || CMD+=(--parameters "@$PARAM_FILE")
for p in "${PARAMS[@]}"; do CMD+=(--parameters "$p"); done
CMD+=("${SUBSCRIPTION_ARGS[@]}" "${EXTRA[@]}")

if [ "$DRY_RUN" = yes ]; then
  printf '%q ' "${CMD[@]}"; printf '\n'
  exit 0
fi
"${CMD[@]}" </dev/null
