terraform {
  # Cross-variable validation needs Terraform 1.9.
  required_version = ">= 1.9.0, < 2.0.0"
}
