#!/usr/bin/env bash
# Fails (exit 1) and lists them if any process started by Tether's end-to-end tests is still
# running: kube-apiserver, etcd, postgres, test-kubelet or the node IdP whose command line
# points into a test dir ($TMPDIR/tether-e2e-*, see tests/src/testdir.rs).
#
#   scripts/check-no-leftovers.sh            check
#   scripts/check-no-leftovers.sh --kill     also SIGKILL them (by pid) after listing
set -euo pipefail
TMP=${TMPDIR:-/tmp}
TMP=${TMP%/}
pattern="${TMP}/tether-e2e-"
# pgrep -f matches the full command line; exclude this script's own pipeline.
mapfile -t lines < <(pgrep -af -- "$pattern" | grep -v -e "check-no-leftovers" -e "pgrep" || true)
left=()
for l in "${lines[@]}"; do
  [ -n "$l" ] || continue
  case "$l" in
    *kube-apiserver*|*etcd*|*postgres*|*test-kubelet*|*idp.mjs*|*node*|*tether-hub*|*tether-agent*) left+=("$l") ;;
  esac
done
# PostgreSQL children rename themselves ("postgres: checkpointer"): catch them by owner + parent dir.
while read -r pid; do
  [ -n "$pid" ] || continue
  if [ -r "/proc/$pid/cwd" ] && [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$pattern"* ]]; then
    left+=("$pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)")
  fi
done < <(pgrep -u postgres 2>/dev/null || true)
if [ ${#left[@]} -eq 0 ]; then
  exit 0
fi
echo "check-no-leftovers: ${#left[@]} test process(es) still running:" >&2
printf '  %s\n' "${left[@]}" >&2
if [ "${1:-}" = "--kill" ]; then
  for l in "${left[@]}"; do kill -KILL "${l%% *}" 2>/dev/null || true; done
fi
exit 1
