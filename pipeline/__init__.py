"""Numba point-cloud kernels and stages: georeferencing, filters, voxel grid, codecs, chunking, camera."""

__all__: list[str] = []
