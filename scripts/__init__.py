"""Repository scripts: the first-deploy orchestration and the image-table refresh."""
