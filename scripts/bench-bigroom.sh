#!/usr/bin/env bash
# bench-bigroom.sh RESULTS: the in-process big-room benchmark of
# internal/gossiproom (TestBenchRoom: rooms of 50 to 500 peers in one process
# on go-libp2p's mocknet, as GossipSub and as a full stream mesh), written
# into RESULTS as the section named by HEADING below.
#
# The old section of that name, if RESULTS has one (it runs to the next "## "
# heading), is removed and the new one appended at the end; every other
# section is kept as it is. `make bench` runs this after the suite on the real
# binary, which rewrites RESULTS from scratch; `make bench-bigroom` runs it
# alone. Nothing leaves the process: mocknet connects its hosts in memory.
#
# The test's knobs (GOSSIPROOM_BENCH_SIZES, _MSGS, _RATE, _MESH_MAX, _GOGC)
# pass through from the environment; see the test's comment.
set -euo pipefail

readonly HEADING="## Big rooms, in one process (GossipSub vs stream mesh)"
GO="${GO:-go}"

if [[ $# -ne 1 ]]; then
  echo "usage: $0 RESULTS   (e.g. $0 bench/results.md, or: make bench-bigroom)" >&2
  exit 2
fi
results=$1
[[ -f $results ]] || { echo "bench-bigroom: $results does not exist (run make bench first)" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bench-bigroom.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The test prints its progress and the table; the table and its summary also
# go to $tmp/table.md. A failed test leaves the results untouched.
GOSSIPROOM_BENCH=1 GOSSIPROOM_BENCH_OUT="$tmp/table.md" \
  "$GO" test -count=1 -run '^TestBenchRoom$' -v -timeout 60m ./internal/gossiproom/
[[ -s $tmp/table.md ]] || { echo "bench-bigroom: the test wrote no table" >&2; exit 1; }

# Keep every line outside the old section, without trailing blank lines,
# then append the new section after one blank line.
awk -v h="$HEADING" '
  $0 == h { skip = 1; next }
  skip && /^## / { skip = 0 }
  !skip { lines[++n] = $0 }
  END {
    while (n > 0 && lines[n] == "") n--
    for (i = 1; i <= n; i++) print lines[i]
  }' "$results" >"$tmp/results.md"
{
  printf '\n%s\n\n' "$HEADING"
  cat "$tmp/table.md"
} >>"$tmp/results.md"
cp "$tmp/results.md" "$results"
echo "bench-bigroom: wrote the section \"${HEADING#\#\# }\" of $results"
