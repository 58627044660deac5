output "server_ids" {
  description = "Ids of the masters (their `--id`), in order."
  value       = local.server_ids
}

output "instance_ids" {
  description = "EC2 instance ids of the masters, in order."
  value       = aws_instance.server[*].id
}

output "private_ips" {
  description = "Private IPv4 addresses of the masters, in order."
  value       = local.placements[*].address
}

output "availability_zones" {
  description = "Availability zone of each master, in order."
  value       = aws_instance.server[*].availability_zone
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
  description = "What an agent needs to join: the `--server` argument, and the SSM parameter holding the token it reads into FEDERATION_TOKEN. Holds no secret."
  value = {
    server                  = join(",", module.bootstrap.api_endpoints)
    api_token_ssm_parameter = local.api_token_parameter
  }
}

output "security_group_id" {
  description = "Security group of the masters (add it as a source to reach them from other groups)."
  value       = aws_security_group.servers.id
}

output "iam_role_arn" {
  description = "IAM role of the masters."
  value       = aws_iam_role.server.arn
}

output "instance_profile_name" {
  description = "Instance profile attached to the masters."
  value       = aws_iam_instance_profile.server.name
}

output "raft_secret_ssm_parameter" {
  description = "Name of the SSM parameter holding the Raft secret."
  value       = local.raft_secret_parameter
}

output "api_token_ssm_parameter" {
  description = "Name of the SSM parameter holding the API token."
  value       = local.api_token_parameter
}
