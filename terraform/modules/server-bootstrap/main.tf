# Renders how every master starts: one systemd unit (the `federation server` command line)
# and one boot script (user data / startup script) per server, from the templates shared by
# all modules. No resources: the cloud modules pass the scripts to their instances.

locals {
  templates   = "${path.module}/../../templates"
  secret_file = "${var.config_dir}/raft-secret"
  token_file  = "${var.config_dir}/api-token"

  servers = {
    for s in var.servers : s.id => {
      id           = s.id
      address      = s.address
      raft_address = "${s.address}:${var.raft_port}"
      http_address = "${s.address}:${var.http_port}"
      peers        = [for o in var.servers : "${o.address}:${var.raft_port}" if o.id != s.id]
    }
  }

  units = {
    for id, s in local.servers : id => templatefile("${local.templates}/federation-server.service.tpl", {
      cluster_name = var.cluster_name
      server_id    = id
      service_user = var.service_user
      install_dir  = var.install_dir
      data_dir     = var.data_dir
      http_address = s.http_address
      raft_address = s.raft_address
      peers        = s.peers
      secret_file  = local.secret_file
      token_file   = local.token_file
    })
  }

  scripts = {
    for id, s in local.servers : id => templatefile("${local.templates}/federation-server.sh.tpl", {
      cluster_name    = var.cluster_name
      server_id       = id
      service_user    = var.service_user
      install_dir     = var.install_dir
      data_dir        = var.data_dir
      config_dir      = var.config_dir
      secret_file     = local.secret_file
      token_file      = local.token_file
      package_spec    = var.package_spec
      pip_index_url   = var.pip_index_url
      secret_source   = var.secret_source
      raft_secret_ref = var.raft_secret_ref
      api_token_ref   = var.api_token_ref
      aws_region      = var.aws_region
      gcp_project     = var.gcp_project
      unit            = trimsuffix(local.units[id], "\n")
    })
  }
}
