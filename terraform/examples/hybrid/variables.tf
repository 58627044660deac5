variable "region" {
  description = "AWS region of the masters."
  type        = string
  default     = "us-east-1"
}

variable "cluster_name" {
  description = "Name of the cluster."
  type        = string
  default     = "hybrid"
}

variable "ami_id" {
  description = "AMI of the masters (Amazon Linux 2023 or Ubuntu 24.04 in the region)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC created for the masters."
  type        = string
  default     = "10.42.0.0/16"
}

variable "onprem_cidr" {
  description = "Network of the on-prem rack, routed to the VPC (VPN or Direct Connect): its agents reach the API from there."
  type        = string
  default     = "192.168.10.0/24"
}

variable "rack" {
  description = "The on-prem agents: name, address, optional capacity and labels."
  type = list(object({
    name       = string
    address    = string
    cpu_milli  = optional(number)
    memory_mib = optional(number)
    labels     = optional(map(string), {})
  }))
  default = [
    { name = "r1-node-1", address = "192.168.10.11" },
    { name = "r1-node-2", address = "192.168.10.12" },
    { name = "r1-node-3", address = "192.168.10.13", labels = { gpu = "a100" } },
  ]
}

variable "package_spec" {
  description = "pip requirement installed on masters and agents."
  type        = string
  default     = "federation[aws]"
}

variable "raft_secret" {
  description = "Raft transport secret (at least 16 characters)."
  type        = string
  sensitive   = true
}

variable "api_token" {
  description = "API bearer token (at least 16 characters)."
  type        = string
  sensitive   = true
}
