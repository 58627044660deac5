output "api_endpoints" {
  description = "HTTP API URLs of the masters."
  value       = module.control_plane.api_endpoints
}

output "instance_ids" {
  description = "EC2 instance ids of the masters."
  value       = module.control_plane.instance_ids
}

output "agent_inventory" {
  description = "Ansible-style YAML inventory of the on-prem agents."
  value       = module.rack.inventory
}

output "agent_units" {
  description = "systemd unit of each on-prem agent."
  value       = module.rack.agent_units
}

output "agent_files" {
  description = "Files to copy to each on-prem agent (units and the token environment file)."
  value       = module.rack.host_files
  sensitive   = true
}
