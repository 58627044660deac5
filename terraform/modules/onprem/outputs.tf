output "api_endpoints" {
  description = "API URLs the agents are given (the on-prem masters, then server_endpoints)."
  value       = local.server_endpoints
}

output "server_units" {
  description = "systemd unit (federation-server.service) of each on-prem master, by name."
  value       = { for s in var.servers : s.name => module.bootstrap.servers[s.name].unit }
}

output "server_scripts" {
  description = "Boot script of each on-prem master, by name: installs the package and starts the unit, once the secret and token files are in place."
  value       = { for s in var.servers : s.name => module.bootstrap.servers[s.name].script }
}

output "agent_units" {
  description = "systemd unit (federation-agent.service) of each agent, by name."
  value       = local.agent_units
}

output "inventory" {
  description = "Ansible-style YAML inventory: groups federation_servers and federation_agents, with their settings as host variables. Holds no secret."
  value       = yamlencode(local.inventory)
}

output "host_files" {
  description = "Every file to copy, by host name then absolute path: {mode, content}. Includes the Raft secret, the API token and the agents' token environment file."
  value       = merge(local.server_files, local.agent_files)
  sensitive   = true
}
