#!/bin/bash
# Boots federation server ${server_id} of cluster ${cluster_name}: installs the package in a
# virtual environment, puts the Raft secret and the API token in root-owned files, and starts
# the server as the systemd unit below. Safe to run again: every step converges.
set -euo pipefail
umask 022

INSTALL_DIR='${install_dir}'
DATA_DIR='${data_dir}'
CONFIG_DIR='${config_dir}'
SERVICE_USER='${service_user}'
SECRET_FILE='${secret_file}'
TOKEN_FILE='${token_file}'
UNIT_FILE=/etc/systemd/system/federation-server.service

log() { echo "federation-bootstrap: $*" >&2; }

# retry COMMAND...: runs COMMAND up to 10 times, 6 s apart (instance credentials and IAM
# bindings can take a moment to be usable after boot).
retry() {
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if "$@"; then
      return 0
    fi
    log "attempt $attempt of $1 failed"
    sleep 6
  done
  return 1
}

python_ok() {
  "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

install_python() {
  if command -v dnf >/dev/null 2>&1; then
    dnf install -y python3.11 python3.11-pip
  elif command -v apt-get >/dev/null 2>&1; then
    apt-get update -y
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip
  elif command -v yum >/dev/null 2>&1; then
    yum install -y python3.11 python3.11-pip
  else
    log "no supported package manager to install Python >= 3.11"
    return 1
  fi
}

PYTHON="$(find_python)" || { install_python && PYTHON="$(find_python)"; } || {
  log "Python >= 3.11 with venv is required"
  exit 1
}

if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
    --shell "$(command -v nologin || echo /bin/false)" "$SERVICE_USER"
fi
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"

if [ ! -x "$INSTALL_DIR/bin/python" ]; then
  "$PYTHON" -m venv "$INSTALL_DIR"
fi
retry "$INSTALL_DIR/bin/python" -m pip install --quiet --upgrade pip
retry "$INSTALL_DIR/bin/python" -m pip install --quiet%{ if pip_index_url != null } --index-url '${pip_index_url}'%{ endif } '${package_spec}'%{ if secret_source == "aws-ssm" } boto3%{ endif }

# write_secret FILE: stores standard input in FILE, readable by root and the service group only.
write_secret() {
  local tmp
  tmp="$(mktemp "$CONFIG_DIR/.secret.XXXXXX")"
  cat >"$tmp"
  if [ ! -s "$tmp" ]; then
    rm -f "$tmp"
    log "empty secret for $1"
    return 1
  fi
  chown root:"$SERVICE_USER" "$tmp"
  chmod 0640 "$tmp"
  mv -f "$tmp" "$1"
}

# store_secret NAME FILE: fetches secret NAME into FILE.
store_secret() {
  fetch_secret "$1" | write_secret "$2"
}
%{ if secret_source == "aws-ssm" }
# fetch_secret NAME: prints a SecureString SSM parameter, read with the instance profile.
fetch_secret() {
  "$INSTALL_DIR/bin/python" - '${aws_region}' "$1" <<'PY'
import sys

import boto3

region, name = sys.argv[1], sys.argv[2]
ssm = boto3.client("ssm", region_name=region)
sys.stdout.write(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
PY
}
retry store_secret '${raft_secret_ref}' "$SECRET_FILE"
retry store_secret '${api_token_ref}' "$TOKEN_FILE"
%{ endif ~}
%{ if secret_source == "gcp-secret-manager" }
# fetch_secret NAME: prints the latest version of a Secret Manager secret, read with the
# instance's service account (token from the metadata server).
fetch_secret() {
  "$INSTALL_DIR/bin/python" - '${gcp_project}' "$1" <<'PY'
import base64
import json
import sys
import urllib.request

project, secret = sys.argv[1], sys.argv[2]
metadata = urllib.request.Request(
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
    headers={"Metadata-Flavor": "Google"},
)
with urllib.request.urlopen(metadata, timeout=10) as response:
    token = json.load(response)["access_token"]
access = urllib.request.Request(
    f"https://secretmanager.googleapis.com/v1/projects/{project}/secrets/{secret}/versions/latest:access",
    headers={"Authorization": f"Bearer {token}"},
)
with urllib.request.urlopen(access, timeout=10) as response:
    payload = json.load(response)["payload"]["data"]
sys.stdout.buffer.write(base64.b64decode(payload))
PY
}
retry store_secret '${raft_secret_ref}' "$SECRET_FILE"
retry store_secret '${api_token_ref}' "$TOKEN_FILE"
%{ endif ~}
%{ if secret_source == "file" }
# The secret and the token are placed by the operator's own tooling before this script runs.
for required in "$SECRET_FILE" "$TOKEN_FILE"; do
  if [ ! -s "$required" ]; then
    log "missing $required: copy it to this host first"
    exit 1
  fi
done
%{ endif ~}

cat >"$UNIT_FILE" <<'UNIT'
${unit}
UNIT
chmod 0644 "$UNIT_FILE"

systemctl daemon-reload
systemctl enable federation-server.service
systemctl restart federation-server.service
log "federation server ${server_id} started"
