#!/usr/bin/env bash
# demo.sh BINARY: a fully offline rendezvous-chat demo on one machine.
#
# It starts a local bootstrap server on loopback, then two chat peers that
# bootstrap from it and meet at a demo-only rendezvous. Nothing leaves
# 127.0.0.1: every node listens on loopback only, the peers bootstrap only
# from the local server (never the public DHT), and mDNS is off.
#
# With tmux installed and a terminal to draw on, the two peers run in two
# panes of a new tmux session; the server stops when that session ends.
# Otherwise (or with DEMO_TMUX=0) it prints the two commands to run in two
# terminals and keeps the server up until Ctrl-C.
#
# Run by `make demo`, which builds BINARY first.
set -euo pipefail

readonly RENDEZVOUS="demo"                   # demo-only, so we meet nobody else
readonly LOOPBACK="/ip4/127.0.0.1/tcp/0"     # loopback, a port the system picks
readonly READY_TIMEOUT=10                    # seconds to wait for the server

die() {
  echo "demo: $*" >&2
  exit 1
}

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BINARY   (e.g. $0 ./bin/rendezvous-chat, or: make demo)" >&2
  exit 2
fi
[[ -x $1 && ! -d $1 ]] || die "$1 is not an executable file (build it with: make build)"
# An absolute path, so that the commands work from any directory or pane.
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
readonly BIN

# What we start, for cleanup; empty until started.
SERVER_PID=""
SESSION=""
TMP="$(mktemp -d "${TMPDIR:-/tmp}/rendezvous-chat-demo.XXXXXX")"

# cleanup runs once on any exit: it ends the tmux session (and with it both
# peers), stops the server, waiting for it to shut down, and removes TMP.
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [[ -n $SESSION ]] && tmux has-session -t "=$SESSION" 2>/dev/null; then
    tmux kill-session -t "=$SESSION" 2>/dev/null || true
  fi
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # It shuts down in well under a second; after 5 s, stop waiting.
    for _ in {1..50}; do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
# Ctrl-C (or a TERM) is how a demo ends: a normal exit, through cleanup.
trap 'exit 0' INT TERM
trap 'exit 129' HUP

# 1. The server: a DHT node with no chat, listening on loopback only. It
# prints events as JSON lines; the first is the ready event with its
# addresses. Without -peer it joins no network: it is the whole network.
: >"$TMP/server.jsonl" # exists before we first read it
"$BIN" -server -listen "$LOOPBACK" -json </dev/null >"$TMP/server.jsonl" 2>"$TMP/server.log" &
SERVER_PID=$!

# 2. Wait for the ready event, a whole line such as
#   {"event":"ready",...,"addrs":["/ip4/127.0.0.1/tcp/40123/p2p/12D3KooW..."],...}
ready=""
for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
  # read succeeds only once the line is complete (ends in a newline).
  if IFS= read -r ready <"$TMP/server.jsonl"; then
    break
  fi
  ready=""
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$TMP/server.log" >&2
    die "the server exited before it was ready"
  fi
  sleep 0.1
done
[[ -n $ready ]] || die "the server printed no ready event within ${READY_TIMEOUT}s"

# Its first address, without needing jq: the text between "addrs":[" and
# the next quote. Multiaddrs and peer IDs contain no quotes.
[[ $ready == *'"event":"ready"'*'"addrs":["'* ]] || die "unexpected first line from the server: $ready"
addr=${ready#*'"addrs":["'}
addr=${addr%%'"'*}
[[ $addr == /ip4/127.0.0.1/tcp/*/p2p/* ]] || die "the server's address is not on loopback: $addr"

# 3. The chat peers: bootstrap from the local server only, no mDNS, listen
# on loopback only, meet at the demo rendezvous.
peer_cmd=("$BIN" -peer "$addr" -mdns=false -listen "$LOOPBACK" -rendezvous "$RENDEZVOUS")

# Use tmux when it is installed, we have a terminal, and it is not turned off.
if [[ ${DEMO_TMUX:-1} != 0 ]] && command -v tmux >/dev/null 2>&1 && [[ -t 0 && -t 1 ]]; then
  SESSION="rendezvous-chat-demo-$$"
  # Each pane runs one peer; when it exits, the pane stays until Enter so
  # that its last lines (who left, what was not delivered) can be read.
  # shellcheck disable=SC2016 # expanded by the pane's bash, not here
  pane_script='"$@"; status=$?
printf "\n[%s exited with status %d; press Enter to close this pane]" "$0" "$status"
read -r _'
  # tmux runs a command given as several arguments directly, with no shell
  # quoting in between. -P -F prints the new pane's ID.
  pane_a=$(tmux new-session -d -s "$SESSION" -c "$PWD" -x 200 -y 50 -P -F '#{pane_id}' \
    bash -c "$pane_script" "peer A" "${peer_cmd[@]}")
  pane_b=$(tmux split-window -v -t "$pane_a" -c "$PWD" -P -F '#{pane_id}' \
    bash -c "$pane_script" "peer B" "${peer_cmd[@]}")
  tmux set-option -w -t "$pane_a" pane-border-status top
  tmux select-pane -t "$pane_a" -T "peer A - type a line and Enter; Ctrl-D leaves"
  tmux select-pane -t "$pane_b" -T "peer B - type a line and Enter; Ctrl-D leaves"
  # When the demo session ends, a client switched to it from another tmux
  # session goes back there instead of detaching.
  tmux set-option -t "$pane_a" detach-on-destroy off
  tmux select-pane -t "$pane_a" # typing starts in peer A

  if [[ -n ${TMUX:-} ]]; then
    # Already inside tmux: switch this client to the demo session (this
    # returns at once; with no client to switch, attach by hand).
    tmux switch-client -t "=$SESSION" 2>/dev/null || true
  else
    # This returns when the session ends or when the user detaches.
    tmux attach-session -t "=$SESSION" || true
  fi
  # The server stays up for as long as the session exists.
  if tmux has-session -t "=$SESSION" 2>/dev/null; then
    echo "demo: the peers are in tmux session $SESSION (tmux attach -t $SESSION);" \
      "the server stops when that session ends, or on Ctrl-C here."
  fi
  while tmux has-session -t "=$SESSION" 2>/dev/null; do
    sleep 0.5
  done
  echo "demo: the tmux session ended; stopping the server."
else
  # The command, quoted for the shell, without a trailing space.
  cmd=$(printf '%q ' "${peer_cmd[@]}")
  cmd=${cmd% }
  cat <<EOF
A local rendezvous-chat server is running on loopback:
  $addr

Run these two commands in two other terminals, then type in either one
(Ctrl-D leaves the chat):

  $cmd

  $cmd

They are the same command: each peer gets a new identity. Press Ctrl-C here
to stop the server when you are done.
EOF
  # Wait for Ctrl-C (the trap then exits through cleanup) or for the server
  # to stop on its own, which is an error.
  status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=""
  cat "$TMP/server.log" >&2
  die "the server stopped unexpectedly (status $status)"
fi
