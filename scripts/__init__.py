"""Maintainer scripts: the image-table refresh, the architecture drawing and the contract venv patch."""
