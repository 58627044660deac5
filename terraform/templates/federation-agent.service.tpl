[Unit]
Description=federation agent ${name} (cluster ${cluster_name})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=${env_file}
ExecStart=${install_dir}/bin/federation agent --server ${join(",", servers)} --data-dir ${data_dir} --name ${name} --pool ${pool}%{ if length(labels) > 0 } --labels ${join(",", [for k in sort(keys(labels)) : "${k}=${labels[k]}"])}%{ endif }%{ if cpu_milli != null } --cpu ${cpu_milli}%{ endif }%{ if memory_mib != null } --memory ${memory_mib}%{ endif }
Restart=always
RestartSec=3
LimitNOFILE=65536
KillMode=mixed

[Install]
WantedBy=multi-user.target
