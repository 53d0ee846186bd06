"""``mme``: the operator CLI that runs the walkthrough against a deployed stack set."""
