# Renders everything the masters and agents of existing hosts need, for the operator's own
# tooling (Ansible, Salt, a PXE image) to copy: no resource is created.

locals {
  templates = "${path.module}/../../templates"
  env_file  = "${var.config_dir}/agent.env"

  server_endpoints = concat(
    [for s in var.servers : "http://${s.address}:${var.http_port}"],
    var.server_endpoints,
  )

  agents = {
    for a in var.agents : a.name => merge(a, {
      labels = merge(a.labels, a.rack == null ? {} : { rack = a.rack })
    })
  }

  agent_units = {
    for name, a in local.agents : name => templatefile("${local.templates}/federation-agent.service.tpl", {
      cluster_name = var.cluster_name
      name         = name
      servers      = local.server_endpoints
      data_dir     = var.agent_data_dir
      pool         = a.pool
      labels       = a.labels
      cpu_milli    = a.cpu_milli
      memory_mib   = a.memory_mib
      install_dir  = var.install_dir
      env_file     = local.env_file
    })
  }

  server_files = {
    for s in var.servers : s.name => {
      "/etc/systemd/system/federation-server.service" = { mode = "0644", content = module.bootstrap.servers[s.name].unit }
      "${var.config_dir}/bootstrap-server.sh"         = { mode = "0750", content = module.bootstrap.servers[s.name].script }
      (module.bootstrap.secret_file)                  = { mode = "0640", content = var.raft_secret }
      (module.bootstrap.token_file)                   = { mode = "0640", content = var.api_token }
    }
  }

  agent_files = {
    for name, a in local.agents : name => {
      "/etc/systemd/system/federation-agent.service" = { mode = "0644", content = local.agent_units[name] }
      (local.env_file)                               = { mode = "0600", content = "FEDERATION_TOKEN=${var.api_token}\n" }
    }
  }

  inventory = {
    all = {
      vars = {
        federation_cluster      = var.cluster_name
        federation_package      = var.package_spec
        federation_install_dir  = var.install_dir
        federation_api_endpoint = local.server_endpoints
      }
      children = {
        federation_servers = {
          hosts = {
            for s in var.servers : s.name => {
              ansible_host           = s.address
              federation_server_id   = s.name
              federation_raft        = module.bootstrap.servers[s.name].raft_address
              federation_http        = module.bootstrap.servers[s.name].http_address
              federation_peers       = module.bootstrap.servers[s.name].peers
              federation_server_unit = "federation-server.service"
            }
          }
        }
        federation_agents = {
          hosts = {
            for name, a in local.agents : name => {
              ansible_host          = a.address
              federation_pool       = a.pool
              federation_labels     = a.labels
              federation_cpu_milli  = a.cpu_milli
              federation_memory_mib = a.memory_mib
              federation_agent_unit = "federation-agent.service"
            }
          }
        }
      }
    }
  }
}

module "bootstrap" {
  source = "../server-bootstrap"

  # The bootstrap module needs one server; with no on-prem masters its output is unused.
  cluster_name  = var.cluster_name
  servers       = length(var.servers) > 0 ? [for s in var.servers : { id = s.name, address = s.address }] : [{ id = "unused", address = "127.0.0.1" }]
  raft_port     = var.raft_port
  http_port     = var.http_port
  package_spec  = var.package_spec
  pip_index_url = var.pip_index_url
  install_dir   = var.install_dir
  data_dir      = var.server_data_dir
  config_dir    = var.config_dir
  secret_source = "file"
}
