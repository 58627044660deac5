output "servers" {
  description = "Per server id: address, raft_address, http_address, peers (the other servers' Raft addresses), unit (systemd unit text) and script (boot script). Holds no secret."
  value = {
    for id, s in local.servers : id => merge(s, {
      unit   = local.units[id]
      script = local.scripts[id]
    })
  }
}

output "api_endpoints" {
  description = "HTTP API URL of every server, in server order."
  value       = [for s in var.servers : "http://${s.address}:${var.http_port}"]
}

output "raft_addresses" {
  description = "Raft address (host:port) of every server, in server order."
  value       = [for s in var.servers : "${s.address}:${var.raft_port}"]
}

output "secret_file" {
  description = "Path of the Raft secret file on a server."
  value       = local.secret_file
}

output "token_file" {
  description = "Path of the API token file on a server."
  value       = local.token_file
}
