variable "cluster_name" {
  description = "Name of the cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.cluster_name))
    error_message = "cluster_name must be 1-31 characters of [a-z0-9-], starting with a letter or digit."
  }
}

variable "servers" {
  description = "Existing hosts that run the masters (empty when the masters live elsewhere): a name (the server id) and the address the others reach it at."
  type = list(object({
    name    = string
    address = string
  }))
  default = []

  validation {
    condition     = contains([0, 1, 3, 5, 7], length(var.servers))
    error_message = "servers must hold 0, 1, 3, 5 or 7 hosts."
  }
}

variable "agents" {
  description = "Existing hosts that run agents. cpu_milli and memory_mib are detected when null; rack becomes the label rack."
  type = list(object({
    name       = string
    address    = string
    pool       = optional(string, "onprem")
    rack       = optional(string)
    labels     = optional(map(string), {})
    cpu_milli  = optional(number)
    memory_mib = optional(number)
  }))
  default = []

  validation {
    condition     = length(var.agents) == length(distinct([for a in var.agents : a.name]))
    error_message = "agent names must be distinct."
  }

  validation {
    condition = alltrue([
      for a in var.agents : can(regex("^[A-Za-z0-9._-]+$", a.name)) && can(regex("^[A-Za-z0-9._-]+$", a.pool)) &&
      alltrue([for k, v in a.labels : can(regex("^[A-Za-z0-9._/-]+$", k)) && can(regex("^[A-Za-z0-9._/-]+$", v))])
    ])
    error_message = "agent names, pools and labels may only hold letters, digits, '.', '_', '-' (and '/' in labels)."
  }
}

variable "server_endpoints" {
  description = "API URLs of masters that are not in servers (e.g. masters on a cloud), given to the agents."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for u in var.server_endpoints : can(regex("^https?://[A-Za-z0-9.:\\[\\]-]+/?$", u))])
    error_message = "server_endpoints must be http(s)://host:port URLs."
  }

  validation {
    condition     = length(var.agents) == 0 || length(var.servers) + length(var.server_endpoints) > 0
    error_message = "Agents need masters: give servers or server_endpoints."
  }
}

variable "http_port" {
  description = "TCP port of the HTTP API of the on-prem masters."
  type        = number
  default     = 4780
}

variable "raft_port" {
  description = "TCP port of the Raft transport of the on-prem masters."
  type        = number
  default     = 4781
}

variable "raft_secret" {
  description = "Raft transport secret (at least 16 characters); required when servers is not empty."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.raft_secret == null ? length(var.servers) == 0 : length(coalesce(var.raft_secret, "x")) >= 16
    error_message = "raft_secret (at least 16 characters) is required when servers is not empty."
  }
}

variable "api_token" {
  description = "API bearer token (at least 16 characters): required by the masters and given to the agents."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.api_token) >= 16
    error_message = "api_token must be at least 16 characters long."
  }
}

variable "package_spec" {
  description = "pip requirement installed on the hosts."
  type        = string
  default     = "federation"
}

variable "pip_index_url" {
  description = "Package index to install from; null for pip's default."
  type        = string
  default     = null
}

variable "install_dir" {
  description = "Virtual environment the package is installed into."
  type        = string
  default     = "/opt/federation"
}

variable "config_dir" {
  description = "Directory of the secret, token and environment files."
  type        = string
  default     = "/etc/federation"
}

variable "server_data_dir" {
  description = "Data directory of a master."
  type        = string
  default     = "/var/lib/federation"
}

variable "agent_data_dir" {
  description = "Data directory of an agent."
  type        = string
  default     = "/var/lib/federation-agent"
}
