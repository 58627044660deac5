terraform {
  # No provider: everything is rendered with built-in functions.
  required_version = ">= 1.9.0, < 2.0.0"
}
