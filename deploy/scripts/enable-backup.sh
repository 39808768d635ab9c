#!/usr/bin/env bash
# Enable Azure Backup for many VMs at once with the az CLI: parallel, idempotent, resumable.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

MAX_PER_POLICY=1000

usage() {
  cat <<EOT
Usage: ${0##*/} -g VAULT_RG -v VAULT -p POLICY [-p POLICY2 ...] VM-SELECTION [options]

Turn on Azure Backup (AzureIaasVM) for every selected VM, calling
'az backup protection enable-for-vm' with the VM's FULL resource id (never a bare
name, which az would look up in the vault's resource group).

  -g, --resource-group RG   the VAULT's resource group
  -v, --vault-name VAULT    Recovery Services vault
  -p, --policy-name NAME    backup policy; give several to spread VMs over them: each
                            holds at most $MAX_PER_POLICY VMs (Azure Backup's limit), filled in order
$(selection_help)

Options:
  -j, --parallel N          enable N VMs at a time (default 8; 1..64)
  -n, --dry-run             print the az commands that would run; change nothing
  -o, --output table|tsv|json   summary format (default table)
  -h, --help                this help

Behaviour:
  * VMs the vault already protects are skipped (one 'az backup item list' per run), so
    a re-run after an interruption only enables what is left.
  * A summary lists every VM with its result; the exit code is 1 when any VM failed,
    2 on bad usage, 0 otherwise.
  * Works with whatever cloud 'az cloud set' selected (Azure, Azure China, US Gov, custom).
EOT
}

# One VM, run by xargs in parallel: enable, record the outcome as a TSV line in the results dir.
enable_one() {
  local results=$1 vault_rg=$2 vault=$3 policy=$4 vm_id=$5 out last job_status code status rc=0 key
  key=$(printf '%s' "$vm_id" | tr '[:upper:]' '[:lower:]' | cksum | cut -d' ' -f1)
  out=$(az_call backup protection enable-for-vm --resource-group "$vault_rg" --vault-name "$vault" \
        --policy-name "$policy" --vm "$vm_id" \
        --query "[[properties.status, properties.errorDetails[0].errorCode]]" -o tsv 2>&1) || rc=$?
  last=$(printf '%s' "$out" | grep -v '^[[:space:]]*$' | tail -n 1 | tr -d '\r')
  job_status=${last%%$'\t'*}
  code=${last#*$'\t'}
  case "$rc:$job_status" in
    0:Completed|0:InProgress) status=Enabled; out="ConfigureBackup job $job_status" ;;
    0:*) status=Failed; [ "$code" != None ] || code=""; out="ConfigureBackup job $job_status${code:+ ($code)}" ;;
    *) status=Failed; out=$(printf '%s' "$last" | tr '\t' ' ') ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$vm_id" "$status" "$policy" "${out:-az exited $rc}" >"$results/$key.tsv"
}

if is_worker_call __enable-one "$@"; then enable_one "${WORKER_ARGS[@]}"; exit 0; fi

VAULT_RG="" VAULT="" POLICIES=() PARALLEL=8 DRY_RUN=no OUTPUT=table
[ $# -gt 0 ] || { usage >&2; exit 2; }
while [ $# -gt 0 ]; do
  if parse_selection_option "$@"; then shift "$SHIFT_BY"; continue; fi
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -g|--resource-group) [ $# -ge 2 ] || die "$1 needs a value"; VAULT_RG=$2; shift 2 ;;
    -v|--vault-name) [ $# -ge 2 ] || die "$1 needs a value"; VAULT=$2; shift 2 ;;
    -p|--policy-name) [ $# -ge 2 ] || die "$1 needs a value"; POLICIES+=("$2"); shift 2 ;;
    -j|--parallel) [ $# -ge 2 ] || die "$1 needs a value"; PARALLEL=$2; shift 2 ;;
    -n|--dry-run) DRY_RUN=yes; shift ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a value"; OUTPUT=$2; shift 2 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[ -n "$VAULT_RG" ] || die "--resource-group (the vault's resource group) is required"
[ -n "$VAULT" ] || die "--vault-name is required"
[ "${#POLICIES[@]}" -gt 0 ] || die "--policy-name is required"
check_common_options

WORK=$(mktemp -d "${TMPDIR:-/tmp}/enable-backup.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/results"

resolve_vm_ids >"$WORK/selected"
check_vm_ids "$WORK/selected"
log "selected $(wc -l <"$WORK/selected") VM(s)"

# What the vault already protects (one listing), compared case-insensitively.
az_call backup item list --resource-group "$VAULT_RG" --vault-name "$VAULT" --backup-management-type AzureIaasVM \
  --workload-type VM --query "[].[properties.virtualMachineId, properties.sourceResourceId]" -o tsv \
  >"$WORK/protected.raw" || die "cannot list the protected items of vault $VAULT in $VAULT_RG"
tr '\t' '\n' <"$WORK/protected.raw" | tr '[:upper:]' '[:lower:]' | awk 'NF && $0 != "none"' | sort -u >"$WORK/protected"
: >"$WORK/todo"
: >"$WORK/skipped.tsv"
while IFS= read -r id; do
  if grep -qxF -- "$(printf '%s' "$id" | tr '[:upper:]' '[:lower:]')" "$WORK/protected"; then
    printf '%s\tAlreadyProtected\t-\tskipped\n' "$id" >>"$WORK/skipped.tsv"
  else
    printf '%s\n' "$id" >>"$WORK/todo"
  fi
done <"$WORK/selected"
TODO_COUNT=$(wc -l <"$WORK/todo")
log "$TODO_COUNT to enable, $(($(wc -l <"$WORK/selected") - TODO_COUNT)) already protected"

# Spread the VMs over the policies by remaining capacity (Azure Backup refuses a 1001st VM).
: >"$WORK/plan"
if [ "$TODO_COUNT" -gt 0 ]; then
  remaining=$TODO_COUNT
  start=1
  for policy in "${POLICIES[@]}"; do
    [ "$remaining" -gt 0 ] || break
    count=$(az_call backup policy show --resource-group "$VAULT_RG" --vault-name "$VAULT" --name "$policy" \
            --query properties.protectedItemsCount -o tsv) || die "cannot read backup policy $policy of vault $VAULT"
    case "$count" in ''|None|*[!0-9]*) count=0 ;; esac
    room=$((MAX_PER_POLICY - count))
    [ "$room" -gt 0 ] || { log "policy $policy is full ($count VMs); trying the next"; continue; }
    take=$((room < remaining ? room : remaining))
    sed -n "${start},$((start + take - 1))p" "$WORK/todo" | awk -v p="$policy" '{ print p "\t" $0 }' >>"$WORK/plan"
    start=$((start + take)); remaining=$((remaining - take))
  done
  [ "$remaining" -eq 0 ] || die "the given policies have room for $((TODO_COUNT - remaining)) more VMs, $TODO_COUNT need one: add -p POLICY"
fi

if [ "$DRY_RUN" = yes ]; then
  while IFS=$'\t' read -r policy id; do
    printf '%q ' "$AZ" backup protection enable-for-vm --resource-group "$VAULT_RG" --vault-name "$VAULT" \
      --policy-name "$policy" --vm "$id" "${SUBSCRIPTION_ARGS[@]}"
    printf '\n'
    printf '%s\tDryRun\t%s\twould enable\n' "$id" "$policy" >>"$WORK/results/dryrun.tsv"
  done <"$WORK/plan"
else
  # Bounded parallelism: xargs runs this script's __enable-one worker, N at a time.
  awk -F'\t' '{ print $1; print $2 }' "$WORK/plan" | tr '\n' '\0' \
    | xargs -0 -r -n 2 -P "$PARALLEL" "$SCRIPT_DIR/${BASH_SOURCE[0]##*/}" __enable-one \
        ${SUBSCRIPTION_ARGS[@]+"${SUBSCRIPTION_ARGS[@]}"} "$WORK/results" "$VAULT_RG" "$VAULT" || true
fi

# Summary: one row per selected VM.
{
  printf 'VM\tResourceGroup\tResult\tPolicy\tDetail\n'
  find "$WORK/skipped.tsv" "$WORK/results" -name '*.tsv' -exec cat {} + | while IFS=$'\t' read -r id result policy detail; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$(vm_name "$id")" "$(vm_rg "$id")" "$result" "$policy" "$detail"
  done | sort -t$'\t' -k3,3 -k2,2 -k1,1
} >"$WORK/summary.tsv"
# A VM that was planned but has no result (its worker was killed) counts as failed.
while IFS=$'\t' read -r policy id; do
  key=$(printf '%s' "$id" | tr '[:upper:]' '[:lower:]' | cksum | cut -d' ' -f1)
  [ "$DRY_RUN" = yes ] || [ -s "$WORK/results/$key.tsv" ] \
    || printf '%s\t%s\tFailed\t%s\tno result from az\n' "$(vm_name "$id")" "$(vm_rg "$id")" "$policy" >>"$WORK/summary.tsv"
done <"$WORK/plan"

case "$OUTPUT" in
  table) print_table "$WORK/summary.tsv" ;;
  tsv) tail -n +2 "$WORK/summary.tsv" ;;
  json) print_json "$WORK/summary.tsv" ;;
esac
awk -F'\t' 'NR > 1 { n[$3]++ } END { s = ""; for (k in n) s = s sprintf("%s%s=%d", (s ? " " : ""), k, n[k]); print "summary: " (s ? s : "nothing selected") }' \
  "$WORK/summary.tsv" >&2
if awk -F'\t' 'NR > 1 && $3 == "Failed" { bad = 1 } END { exit !bad }' "$WORK/summary.tsv"; then exit 1; fi
exit 0
