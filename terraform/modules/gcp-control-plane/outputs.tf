output "server_ids" {
  description = "Ids of the masters (their `--id` and instance names), in order."
  value       = local.server_ids
}

output "instance_self_links" {
  description = "Self links of the master instances, in order."
  value       = google_compute_instance.server[*].self_link
}

output "private_ips" {
  description = "Internal addresses of the masters, in order."
  value       = google_compute_address.server[*].address
}

output "zones" {
  description = "Zone of each master, in order."
  value       = local.zone_of
}

output "api_endpoints" {
  description = "HTTP API URL of every master."
  value       = module.bootstrap.api_endpoints
}

output "raft_addresses" {
  description = "Raft address (host:port) of every master."
  value       = module.bootstrap.raft_addresses
}

output "agent_join" {
  description = "What an agent needs to join: the `--server` argument, and the Secret Manager secret holding the token it reads into FEDERATION_TOKEN. Holds no secret."
  value = {
    server              = join(",", module.bootstrap.api_endpoints)
    api_token_secret_id = local.api_token_id
  }
}

output "service_account_email" {
  description = "Service account of the masters."
  value       = google_service_account.server.email
}

output "raft_secret_secret_id" {
  description = "Secret Manager secret holding the Raft secret."
  value       = local.raft_secret_id
}

output "api_token_secret_id" {
  description = "Secret Manager secret holding the API token."
  value       = local.api_token_id
}
