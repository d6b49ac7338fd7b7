"""Configuration of the point filters (no numba import here: the agent's config loads it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FilterConfig(BaseModel):
    """Point filters applied before georeferencing (sensor/vehicle frames) and the voxel
    size of the downsampled cloud."""

    model_config = ConfigDict(extra="forbid")

    min_range_m: float = Field(0.5, ge=0, description="drop returns closer than this (sensor frame)")
    max_range_m: float = Field(200.0, gt=0, description="drop returns further than this")
    crop_box: tuple[float, float, float, float, float, float] | None = Field(
        None, description="keep only points inside xmin,ymin,zmin,xmax,ymax,zmax (vehicle frame)")
    body_box: tuple[float, float, float, float, float, float] | None = Field(
        (-2.5, -1.1, 0.0, 2.5, 1.1, 1.85),
        description="the vehicle's own body: points inside are dropped (vehicle frame)")
    outlier_neighbors: int = Field(20, ge=1, description="k of the statistical outlier filter")
    outlier_std_ratio: float = Field(2.0, gt=0)
    outlier_enabled: bool = True
    voxel_m: float = Field(0.05, ge=0, description="voxel size of the downsampled cloud (0 = none)")

    @model_validator(mode="after")
    def _check(self) -> FilterConfig:
        if self.max_range_m <= self.min_range_m:
            raise ValueError("max_range_m must exceed min_range_m")
        for name in ("crop_box", "body_box"):
            b = getattr(self, name)
            if b is not None and not (b[0] < b[3] and b[1] < b[4] and b[2] < b[5]):
                raise ValueError(f"{name}: each min must be below its max")
        return self
