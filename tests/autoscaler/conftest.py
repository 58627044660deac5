"""Fixtures for autoscaler tests: the moto EC2 server and AWS credentials of the provider
tests, shared rather than started twice."""

from __future__ import annotations

from tests.providers.conftest import aws_env, moto_url

__all__ = ["aws_env", "moto_url"]
