"""Test-time IAM policy evaluation (npm ``@cloud-copilot/iam-simulate`` run as a node process)."""
