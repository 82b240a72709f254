"""File formats: PLY and .splat for Gaussians, atomic writes shared by every writer."""
