#!/usr/bin/env bash
# Start a dev cluster on this machine (one server, two local agents), run an example job on
# it, show its output, and keep the cluster running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR="${FEDERATION_DEV_HTTP:-127.0.0.1:4780}"
RAFT="${FEDERATION_DEV_RAFT:-127.0.0.1:4790}"
DATA="${FEDERATION_DEV_DATA:-.dev-data}"
export FEDERATION_ADDR="http://$ADDR"
FRESH=()
if [ -n "${FEDERATION_DEV_FRESH:-}" ]; then FRESH=(--fresh); fi

# A second `make dev` must not talk to the first one's cluster and print its old output.
if (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null; then
  echo "make dev: a dev cluster (or something else) already listens on $ADDR." >&2
  echo "Stop it (Ctrl-C in its shell), or run another on other ports:" >&2
  echo "  FEDERATION_DEV_HTTP=127.0.0.1:4880 FEDERATION_DEV_RAFT=127.0.0.1:4890 FEDERATION_DEV_DATA=.dev-data-2 make dev" >&2
  exit 1
fi

federation dev --http "$ADDR" --raft "$RAFT" --data-dir "$DATA" --log-level warning "${FRESH[@]}" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 150); do
  if [ -s "$DATA/api.token" ]; then
    FEDERATION_TOKEN="$(cat "$DATA/api.token")"
    export FEDERATION_TOKEN
    if federation --timeout 1 status >/dev/null 2>&1; then break; fi
  fi
  if ! kill -0 "$server" 2>/dev/null; then echo "the dev cluster exited" >&2; exit 1; fi
  sleep 0.2
done

federation job run examples/hello-batch.yaml
for _ in $(seq 1 150); do
  status="$(federation -o json job status hello | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
  case "$status" in complete|failed) break ;; esac
  sleep 0.2
done
federation job status hello
for alloc in $(federation -o json alloc list --job hello | python3 -c 'import json,sys; print(" ".join(a["id"] for a in json.load(sys.stdin)))'); do
  federation alloc logs "$alloc"
done
echo
echo "dev cluster running at $FEDERATION_ADDR (Ctrl-C to stop). In another shell:"
echo "  export FEDERATION_ADDR=$FEDERATION_ADDR FEDERATION_TOKEN=$FEDERATION_TOKEN"
echo "  federation job run examples/service-health.yaml && federation job list"
wait "$server"
