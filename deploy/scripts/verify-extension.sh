#!/usr/bin/env bash
# Show the VMSnapshotLinux extension of many VMs, az-style, and fail when any VM lacks a healthy one.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

usage() {
  cat <<EOT
Usage: ${0##*/} VM-SELECTION [options]

List the snapshot extension of every selected VM, like 'az vm extension list -o table'
(Name, ProvisioningState, Publisher, Version, AutoUpgradeMinorVersion) plus VM and
ResourceGroup. Exit code 1 when any VM lacks the extension or its provisioningState is
not Succeeded; 2 on bad usage or when az itself fails.

$(selection_help)
  -g, --resource-group RG      same as --vm-resource-group

Options:
  --type TYPE                  extension type to look for (default VMSnapshotLinux)
  --publisher PUBLISHER        also require this publisher (default: any)
  -j, --parallel N             query N VMs at a time (default 8; 1..64)
  -o, --output table|json|tsv  output format (default table)
  -h, --help                   this help
EOT
}

# One VM, run in parallel by xargs: write "vm rg name state publisher version autoUpgrade" rows.
verify_one() {
  local results=$1 ext_type=$2 publisher=$3 vm_id=$4 key rows rc=0 query
  key=$(printf '%s' "$vm_id" | tr '[:upper:]' '[:lower:]' | cksum | cut -d' ' -f1)
  query="[?typePropertiesType=='$ext_type'"
  [ -z "$publisher" ] || query+=" && publisher=='$publisher'"
  query+="].[name, provisioningState, publisher, typeHandlerVersion, autoUpgradeMinorVersion]"
  rows=$(az_call vm extension list --ids "$vm_id" --query "$query" -o tsv 2>"$results/$key.err") || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s\t%s\t-\tError\t-\t-\t-\n' "$(vm_name "$vm_id")" "$(vm_rg "$vm_id")" >"$results/$key.tsv"
    return 0
  fi
  rm -f "$results/$key.err"
  if [ -z "$rows" ]; then
    printf '%s\t%s\t-\tMissing\t-\t-\t-\n' "$(vm_name "$vm_id")" "$(vm_rg "$vm_id")" >"$results/$key.tsv"
  else
    printf '%s\n' "$rows" | awk -F'\t' -v vm="$(vm_name "$vm_id")" -v rg="$(vm_rg "$vm_id")" \
      'BEGIN { OFS = "\t" } { a = tolower($5); print vm, rg, $1, $2, $3, $4, (a == "true" ? "true" : "false") }' \
      >"$results/$key.tsv"
  fi
}

if is_worker_call __verify-one "$@"; then verify_one "${WORKER_ARGS[@]}"; exit 0; fi

EXT_TYPE=VMSnapshotLinux PUBLISHER="" PARALLEL=8 OUTPUT=table
[ $# -gt 0 ] || { usage >&2; exit 2; }
while [ $# -gt 0 ]; do
  if parse_selection_option "$@"; then shift "$SHIFT_BY"; continue; fi
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -g|--resource-group) [ $# -ge 2 ] || die "$1 needs a value"; VM_GROUPS+=("$2"); shift 2 ;;
    --type) [ $# -ge 2 ] || die "$1 needs a value"; EXT_TYPE=$2; shift 2 ;;
    --publisher) [ $# -ge 2 ] || die "$1 needs a value"; PUBLISHER=$2; shift 2 ;;
    -j|--parallel) [ $# -ge 2 ] || die "$1 needs a value"; PARALLEL=$2; shift 2 ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a value"; OUTPUT=$2; shift 2 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
case "$EXT_TYPE$PUBLISHER" in *"'"*) die "--type/--publisher must not contain quotes" ;; esac
check_common_options

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verify-extension.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/results"
resolve_vm_ids >"$WORK/selected"
check_vm_ids "$WORK/selected"

tr '\n' '\0' <"$WORK/selected" \
  | xargs -0 -r -n 1 -P "$PARALLEL" "$SCRIPT_DIR/${BASH_SOURCE[0]##*/}" __verify-one \
      ${SUBSCRIPTION_ARGS[@]+"${SUBSCRIPTION_ARGS[@]}"} "$WORK/results" "$EXT_TYPE" "$PUBLISHER" || true

{
  printf 'VM\tResourceGroup\tName\tProvisioningState\tPublisher\tVersion\tAutoUpgradeMinorVersion\n'
  find "$WORK/results" -name '*.tsv' -exec cat {} + | sort -t$'\t' -k2,2 -k1,1
} >"$WORK/table.tsv"
case "$OUTPUT" in
  table) print_table "$WORK/table.tsv" ;;
  tsv) tail -n +2 "$WORK/table.tsv" ;;
  json) print_json "$WORK/table.tsv" ;;
esac

for err in "$WORK"/results/*.err; do
  [ -e "$err" ] || continue
  log "az failed for a VM: $(grep -v '^[[:space:]]*$' "$err" | tail -n 1)"
done
awk -F'\t' 'NR > 1 { n[$4]++; t++ } END { s = ""; for (k in n) s = s sprintf(" %s=%d", k, n[k]); print "verified " t+0 " VM(s):" s }' \
  "$WORK/table.tsv" >&2
if ls "$WORK"/results/*.err >/dev/null 2>&1; then exit 2; fi
if awk -F'\t' 'NR > 1 && $4 != "Succeeded" { bad = 1 } END { exit !bad }' "$WORK/table.tsv"; then exit 1; fi
exit 0
