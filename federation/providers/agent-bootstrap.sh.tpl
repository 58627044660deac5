#!/bin/sh
# Joins this machine to a federation cluster: installs and starts the agent as a service.
set -eu
{install}
umask 077
mkdir -p /etc/federation /var/lib/federation
cat > /etc/federation/agent.env <<'FEDERATION_ENV'
FEDERATION_TOKEN={token}
FEDERATION_INSTANCE_POOL={pool}
FEDERATION_ENV
cat > /etc/systemd/system/federation-agent.service <<'FEDERATION_UNIT'
[Unit]
Description=federation agent
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile=/etc/federation/agent.env
ExecStart={command}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
FEDERATION_UNIT
systemctl daemon-reload
systemctl enable --now federation-agent.service
