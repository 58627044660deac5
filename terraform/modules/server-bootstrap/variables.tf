variable "cluster_name" {
  description = "Name of the federation cluster, used in unit descriptions."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.cluster_name))
    error_message = "cluster_name must be 1-31 characters of [a-z0-9-], starting with a letter or digit."
  }
}

variable "servers" {
  description = "The masters, in order: a stable id and the address (IP or DNS name) the others reach it at."
  type = list(object({
    id      = string
    address = string
  }))

  validation {
    condition     = length(var.servers) >= 1 && length(var.servers) == length(distinct([for s in var.servers : s.id]))
    error_message = "servers must hold at least one server, with distinct ids."
  }

  validation {
    condition     = alltrue([for s in var.servers : can(regex("^[A-Za-z0-9._-]+$", s.id)) && can(regex("^[A-Za-z0-9.:-]+$", s.address))])
    error_message = "server ids and addresses may only hold letters, digits, '.', ':', '_' and '-'."
  }
}

variable "raft_port" {
  description = "TCP port of the Raft transport on every server."
  type        = number
  default     = 4781
}

variable "http_port" {
  description = "TCP port of the HTTP API on every server."
  type        = number
  default     = 4780
}

variable "package_spec" {
  description = "pip requirement that installs the federation package (a version pin, a wheel URL or path)."
  type        = string
  default     = "federation"

  validation {
    condition     = length(var.package_spec) > 0 && !can(regex("['\\s]", var.package_spec))
    error_message = "package_spec must be non-empty, without quotes or whitespace."
  }
}

variable "pip_index_url" {
  description = "Package index pip installs from; null keeps pip's default."
  type        = string
  default     = null

  validation {
    condition     = var.pip_index_url == null || !can(regex("['\\s]", coalesce(var.pip_index_url, "x")))
    error_message = "pip_index_url must not hold quotes or whitespace."
  }
}

variable "install_dir" {
  description = "Virtual environment the package is installed into."
  type        = string
  default     = "/opt/federation"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.install_dir))
    error_message = "install_dir must be an absolute path of letters, digits, '.', '_', '-' and '/'."
  }
}

variable "data_dir" {
  description = "Data directory of the server (Raft journal and snapshots)."
  type        = string
  default     = "/var/lib/federation"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.data_dir))
    error_message = "data_dir must be an absolute path of letters, digits, '.', '_', '-' and '/'."
  }
}

variable "config_dir" {
  description = "Directory holding the Raft secret and API token files."
  type        = string
  default     = "/etc/federation"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.config_dir))
    error_message = "config_dir must be an absolute path of letters, digits, '.', '_', '-' and '/'."
  }
}

variable "service_user" {
  description = "System user the server runs as."
  type        = string
  default     = "federation"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.service_user))
    error_message = "service_user must be a valid system user name."
  }
}

variable "secret_source" {
  description = "Where the boot script reads the Raft secret and the API token: aws-ssm, gcp-secret-manager, or file (already placed by the operator)."
  type        = string
  default     = "file"

  validation {
    condition     = contains(["aws-ssm", "gcp-secret-manager", "file"], var.secret_source)
    error_message = "secret_source must be one of aws-ssm, gcp-secret-manager, file."
  }
}

variable "raft_secret_ref" {
  description = "Name of the SSM parameter or Secret Manager secret holding the Raft secret (not the secret itself)."
  type        = string
  default     = ""

  validation {
    condition     = (var.secret_source == "file" && var.raft_secret_ref == "") || can(regex("^[A-Za-z0-9/._-]+$", var.raft_secret_ref))
    error_message = "raft_secret_ref is required (letters, digits, '/', '.', '_', '-') unless secret_source is file."
  }
}

variable "api_token_ref" {
  description = "Name of the SSM parameter or Secret Manager secret holding the API token (not the token itself)."
  type        = string
  default     = ""

  validation {
    condition     = (var.secret_source == "file" && var.api_token_ref == "") || can(regex("^[A-Za-z0-9/._-]+$", var.api_token_ref))
    error_message = "api_token_ref is required (letters, digits, '/', '.', '_', '-') unless secret_source is file."
  }
}

variable "aws_region" {
  description = "Region of the SSM parameters (secret_source = aws-ssm)."
  type        = string
  default     = ""

  validation {
    condition     = var.secret_source != "aws-ssm" || can(regex("^[a-z0-9-]+$", var.aws_region))
    error_message = "aws_region is required when secret_source is aws-ssm."
  }
}

variable "gcp_project" {
  description = "Project of the Secret Manager secrets (secret_source = gcp-secret-manager)."
  type        = string
  default     = ""

  validation {
    condition     = var.secret_source != "gcp-secret-manager" || can(regex("^[a-z][a-z0-9-]+$", var.gcp_project))
    error_message = "gcp_project is required when secret_source is gcp-secret-manager."
  }
}
