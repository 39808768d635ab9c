# shellcheck shell=bash
# Shared by the kit's az scripts: VM selection, az invocation, table printing.
# Nothing here names a cloud host: every call goes through whichever cloud `az cloud set` selected.

AZ=${AZ:-az}
SUBSCRIPTION_ARGS=()
VM_IDS_ARGS=()
VM_FILES=()
VM_GROUPS=()
VM_TAGS=()

die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 2; }
log() { printf '%s\n' "$*" >&2; }

# az with the selected subscription; stdin closed so a prompt can never hang a batch run.
az_call() { "$AZ" "$@" "${SUBSCRIPTION_ARGS[@]}" --only-show-errors </dev/null; }

# The scripts run themselves once per VM (in parallel) as `SCRIPT MARKER [--subscription S] ARGS...`.
# True when the arguments are such a call: the subscription is then set for az_call and the rest of the
# arguments are in WORKER_ARGS.
is_worker_call() {
  local marker=$1
  shift
  [ "${1:-}" = "$marker" ] || return 1
  shift
  SUBSCRIPTION_ARGS=()
  if [ "${1:-}" = --subscription ]; then SUBSCRIPTION_ARGS=(--subscription "$2"); shift 2; fi
  WORKER_ARGS=("$@")
}

# Parse one selection option; returns 0 and sets SHIFT_BY when it consumed arguments.
parse_selection_option() {
  SHIFT_BY=0
  case "$1" in
    --ids)
      shift; SHIFT_BY=1
      while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do VM_IDS_ARGS+=("$1"); shift; SHIFT_BY=$((SHIFT_BY + 1)); done
      [ "$SHIFT_BY" -gt 1 ] || die "--ids needs at least one full VM resource id" ;;
    --file) [ $# -ge 2 ] || die "--file needs a path"; [ -r "$2" ] || die "cannot read VM list file: $2"
      VM_FILES+=("$2"); SHIFT_BY=2 ;;
    --resource-group-vms|--vm-resource-group) [ $# -ge 2 ] || die "$1 needs a resource group"
      VM_GROUPS+=("$2"); SHIFT_BY=2 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs KEY or KEY=VALUE"; VM_TAGS+=("$2"); SHIFT_BY=2 ;;
    --subscription) [ $# -ge 2 ] || die "--subscription needs a name or id"
      SUBSCRIPTION_ARGS=(--subscription "$2"); SHIFT_BY=2 ;;
    *) return 1 ;;
  esac
  return 0
}

selection_help() {
  cat <<'EOT'
VM selection (combine freely; duplicates are removed; VMs are always passed to az by full resource id):
  --ids ID [ID...]             full VM resource ids (/subscriptions/.../virtualMachines/NAME)
  --file FILE                  a file with one full VM id per line (blank lines and # comments ignored)
  --vm-resource-group RG       every VM in resource group RG (repeatable)
  --tag KEY[=VALUE]            every VM carrying the tag (repeatable)
  --subscription SUB           subscription for every az call (default: az's current one)
EOT
}

# The checks every selecting script makes once its options are parsed: parallelism, output format, a VM
# selection, and az itself.
check_common_options() {
  case "$PARALLEL" in ''|*[!0-9]*) die "--parallel must be a number" ;; esac
  if [ "$PARALLEL" -lt 1 ] || [ "$PARALLEL" -gt 64 ]; then die "--parallel must be between 1 and 64"; fi
  case "$OUTPUT" in table|tsv|json) ;; *) die "--output must be table, tsv or json" ;; esac
  [ "${#VM_IDS_ARGS[@]}${#VM_FILES[@]}${#VM_GROUPS[@]}${#VM_TAGS[@]}" != 0000 ] \
    || die "select VMs with --ids, --file, --vm-resource-group or --tag"
  command -v "$AZ" >/dev/null || die "az CLI not found (set AZ=/path/to/az)"
}

is_vm_id() {
  local id_lower
  id_lower=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')
  case "$id_lower" in
    /subscriptions/*/resourcegroups/*/providers/microsoft.compute/virtualmachines/*) ;;
    *) return 1 ;;
  esac
  [ "$(printf '%s' "$1" | tr -cd '/' | wc -c)" -eq 8 ]
}

# Print the selected VM ids, one per line, de-duplicated case-insensitively (first spelling kept).
resolve_vm_ids() {
  {
    local id f g t
    for id in "${VM_IDS_ARGS[@]}"; do printf '%s\n' "$id"; done
    for f in "${VM_FILES[@]}"; do sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' "$f" | grep -v '^$' || true; done
    # Generic resource listings: one cheap call per group or tag, whatever the fleet size.
    for g in "${VM_GROUPS[@]}"; do
      az_call resource list --resource-group "$g" --resource-type Microsoft.Compute/virtualMachines \
        --query "[].id" -o tsv || die "listing VMs of resource group $g failed"
    done
    for t in "${VM_TAGS[@]}"; do  # az refuses --tag together with --resource-type: filter here
      az_call resource list --tag "$t" --query "[].[type, id]" -o tsv \
        | awk -F'\t' 'tolower($1) == "microsoft.compute/virtualmachines" { print $2 }' \
        || die "listing VMs tagged $t failed"
    done
  } | tr -d '\r' | awk 'NF && !seen[tolower($0)]++'
}

# Check every id before touching anything: a typo must not surface halfway through a batch.
check_vm_ids() {
  local id bad=0
  while IFS= read -r id; do
    if ! is_vm_id "$id"; then log "not a full VM resource id: $id"; bad=1; fi
  done <"$1"
  [ "$bad" -eq 0 ] || die "fix the VM ids above (expected /subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME)"
}

vm_rg() { printf '%s' "$1" | cut -d/ -f5; }
vm_name() { printf '%s' "$1" | cut -d/ -f9; }

# Print a TSV file (header first) as an aligned table with a dashed rule, like az -o table.
print_table() {
  awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > nf) nf = NF; rows = NR }
    END {
      for (r = 1; r <= rows; r++) {
        line = ""
        for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s", cell[r, i]) (i < nf ? "  " : "")
        sub(/ +$/, "", line); print line
        if (r == 1) { line = ""; for (i = 1; i <= nf; i++) { d = ""; for (k = 0; k < w[i]; k++) d = d "-"; line = line d (i < nf ? "  " : "") } print line }
      }
    }' "$1"
}

# Print a TSV file (header first) as a JSON array of objects; "true"/"false" become booleans.
print_json() {
  awk -F'\t' '
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); return s }
    function val(s) { return (s == "true" || s == "false") ? s : "\"" esc(s) "\"" }
    NR == 1 { for (i = 1; i <= NF; i++) h[i] = $i; n = NF; printf "["; next }
    { printf "%s\n  {", (NR > 2 ? "," : "")
      for (i = 1; i <= n; i++) printf "%s\"%s\": %s", (i > 1 ? ", " : ""), esc(h[i]), val($i)
      printf "}" }
    END { if (NR <= 1) printf "["; print (NR > 1 ? "\n]" : "]") }' "$1"
}
