#!/usr/bin/env bash
# Start a dev cluster on this machine, run an example job on it, and keep the cluster running
# until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR="${FEDERATION_DEV_HTTP:-127.0.0.1:4780}"
export FEDERATION_ADDR="http://$ADDR"

federation dev --http "$ADDR" --log-level warning &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  if federation --timeout 1 status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "the dev server exited" >&2; exit 1; fi
  sleep 0.2
done

federation job run examples/hello-batch.yaml
federation job status hello
federation status
echo
echo "dev cluster running at $FEDERATION_ADDR (Ctrl-C to stop); try: federation job list"
wait "$server"
