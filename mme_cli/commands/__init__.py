"""The commands of ``mme``, one module per group of related commands."""
