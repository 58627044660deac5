variable "project_id" {
  description = "Project the masters run in."
  type        = string
}

variable "region" {
  description = "Region of the subnetwork and of the masters' internal addresses."
  type        = string
}

variable "zones" {
  description = "Zones the masters are spread over, round-robin (give three for three masters)."
  type        = list(string)

  validation {
    condition     = length(var.zones) >= 1
    error_message = "zones must hold at least one zone."
  }
}

variable "cluster_name" {
  description = "Name of the cluster: prefix of every resource name and value of the federation-cluster label."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.cluster_name))
    error_message = "cluster_name must be 1-31 characters of [a-z0-9-], starting with a letter."
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

variable "network" {
  description = "VPC network (name or self link) the firewall rules apply to."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork (self link) the masters and their reserved internal addresses live in."
  type        = string
}

variable "machine_type" {
  description = "Machine type of the masters."
  type        = string
  default     = "e2-small"
}

variable "image" {
  description = "Boot image of the masters: a Linux with systemd and Python >= 3.11 (or an apt/dnf package for it)."
  type        = string
  default     = "ubuntu-os-cloud/ubuntu-2404-lts-amd64"
}

variable "boot_disk_size_gb" {
  description = "Size of the boot disk of each master, in GB."
  type        = number
  default     = 20
}

variable "api_allowed_cidrs" {
  description = "CIDR blocks allowed to reach the HTTP API port (clients and agents)."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.api_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "api_allowed_cidrs must be CIDR blocks."
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
  description = "Raft transport secret (at least 16 characters), stored in Secret Manager. Ignored when raft_secret_secret_id is set."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.raft_secret == null || length(coalesce(var.raft_secret, "x")) >= 16
    error_message = "raft_secret must be at least 16 characters long."
  }
}

variable "api_token" {
  description = "Bearer token of the HTTP API, stored in Secret Manager. Ignored when api_token_secret_id is set."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.api_token == null || length(coalesce(var.api_token, "x")) >= 16
    error_message = "api_token must be at least 16 characters long."
  }
}

variable "raft_secret_secret_id" {
  description = "Id of an existing Secret Manager secret (in project_id) holding the Raft secret; null to create one from raft_secret."
  type        = string
  default     = null
}

variable "api_token_secret_id" {
  description = "Id of an existing Secret Manager secret (in project_id) holding the API token; null to create one from api_token."
  type        = string
  default     = null
}

variable "package_spec" {
  description = "pip requirement the masters install (a version pin, a wheel URL)."
  type        = string
  default     = "federation[gcp]"
}

variable "pip_index_url" {
  description = "Package index the masters install from; null for pip's default."
  type        = string
  default     = null
}

variable "agent_name_prefix" {
  description = "Name prefix of the agent instances the GCP provider plugin launches: the masters may create and delete only instances and disks whose names start with it."
  type        = string
  default     = "fed-"
}

variable "agent_service_account_emails" {
  description = "Service accounts the GCP provider plugin may attach to the agent instances it launches."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Labels added to every resource that takes them."
  type        = map(string)
  default     = {}
}
