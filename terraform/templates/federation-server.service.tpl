[Unit]
Description=federation server ${server_id} (cluster ${cluster_name})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${service_user}
Group=${service_user}
ExecStart=${install_dir}/bin/federation server --id ${server_id} --data-dir ${data_dir} --http ${http_address} --raft ${raft_address}%{ if length(peers) > 0 } --peers ${join(",", peers)}%{ endif } --secret-file ${secret_file} --token-file ${token_file}
Restart=always
RestartSec=3
LimitNOFILE=65536
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=${data_dir}

[Install]
WantedBy=multi-user.target
