variable "cluster_name" {
  description = "Name of the cluster: prefix of every resource name and value of the federation:cluster tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.cluster_name))
    error_message = "cluster_name must be 1-31 characters of [a-z0-9-], starting with a letter or digit."
  }
}

variable "server_count" {
  description = "Number of masters (odd: 3 tolerates one failure, 5 tolerates two)."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 3, 5, 7], var.server_count)
    error_message = "server_count must be 1, 3, 5 or 7."
  }
}

variable "subnet_ids" {
  description = "Subnets the masters are spread over, round-robin (give one per availability zone). All in one VPC."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids must hold at least one subnet."
  }
}

variable "server_host_number" {
  description = "Host number, within its subnet's CIDR block, of the first master in each subnet (the next one in the same subnet takes the next number). AWS reserves the first four."
  type        = number
  default     = 10

  validation {
    condition     = var.server_host_number >= 4
    error_message = "server_host_number must be at least 4 (AWS reserves the first four addresses of a subnet)."
  }
}

variable "ami_id" {
  description = "AMI of the masters: a Linux with systemd and Python >= 3.11 (or a dnf/apt package for it), e.g. Amazon Linux 2023 or Ubuntu 24.04."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the masters."
  type        = string
  default     = "t3.small"
}

variable "key_name" {
  description = "EC2 key pair for SSH access; null for none."
  type        = string
  default     = null
}

variable "root_volume_size_gib" {
  description = "Size of the encrypted root volume of each master, in GiB."
  type        = number
  default     = 20
}

variable "api_allowed_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the HTTP API port (clients and agents)."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.api_allowed_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")])
    error_message = "api_allowed_cidrs must be IPv4 CIDR blocks."
  }
}

variable "http_port" {
  description = "TCP port of the HTTP API."
  type        = number
  default     = 4780
}

variable "raft_port" {
  description = "TCP port of the Raft transport, opened only among the masters."
  type        = number
  default     = 4781
}

variable "raft_secret" {
  description = "Raft transport secret (at least 16 characters), stored as an SSM SecureString. Ignored when raft_secret_ssm_parameter is set."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.raft_secret == null || length(coalesce(var.raft_secret, "x")) >= 16
    error_message = "raft_secret must be at least 16 characters long."
  }
}

variable "api_token" {
  description = "Bearer token of the HTTP API, stored as an SSM SecureString. Ignored when api_token_ssm_parameter is set."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.api_token == null || length(coalesce(var.api_token, "x")) >= 16
    error_message = "api_token must be at least 16 characters long."
  }
}

variable "raft_secret_ssm_parameter" {
  description = "Name of an existing SecureString SSM parameter holding the Raft secret; null to create one from raft_secret."
  type        = string
  default     = null
}

variable "api_token_ssm_parameter" {
  description = "Name of an existing SecureString SSM parameter holding the API token; null to create one from api_token."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key encrypting the SSM parameters; null for the account's aws/ssm key."
  type        = string
  default     = null
}

variable "package_spec" {
  description = "pip requirement the masters install (a version pin, a wheel URL)."
  type        = string
  default     = "federation[aws]"
}

variable "pip_index_url" {
  description = "Package index the masters install from; null for pip's default."
  type        = string
  default     = null
}

variable "agent_role_arns" {
  description = "IAM roles the AWS provider plugin may pass to the agent instances it launches (through their instance profiles)."
  type        = list(string)
  default     = []
}

variable "agent_vpc_ids" {
  description = "VPCs besides the masters' own whose subnets and security groups the AWS provider plugin may launch agents into."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
