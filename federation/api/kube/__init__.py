"""The Kubernetes endpoint: a Kubernetes API subset served under ``/k8s`` by every server.

kubectl and the Kubernetes client libraries talk to it as to an API server; it translates
Deployments, Jobs and CronJobs into federation jobs (``manifests``), shows jobs and their
allocations as Kubernetes objects and Tables (``objects``), applies strategic merge patches
(``smp``), and describes itself through discovery and OpenAPI v3 (``discovery``). The HTTP
edge is ``routes``; everything else here is pure.
"""
