"""The codecs section of the agent configuration and the codec registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import CodecError


class CodecConfig(BaseModel):
    """Codec choices for chunks (``codecs:`` in the agent config).

    ``xyz_step_m`` is the quantized codec's grid: every coordinate is within half of it
    (1 cm: 5 mm maximum error). ``xyz_order``: ``auto`` keeps scan order and tries a ring or
    Morton order only for clouds that cost more than ``try_other_above_bits`` per point.
    """

    model_config = ConfigDict(extra="forbid")

    xyz_step_m: float = Field(0.01, gt=0.0, le=1.0, description="quantization step; max error is half of it")
    xyz_order: str = Field("auto", pattern="^(auto|scan|ring|morton)$")
    try_other_above_bits: float = Field(14.0, gt=0.0, description="bits/point above which other orders are tried")
    keep_order: bool = Field(False, description="store the permutation of a reordered chunk")
    zstd_level: int = Field(3, ge=1, le=22, description="zstd level for the codecs' small side sections")


def _quantized(cfg: CodecConfig) -> Any:
    from pipeline.codecs.quantized import QuantizedCodec

    return QuantizedCodec(step=cfg.xyz_step_m, order=cfg.xyz_order, try_other_above_bits=cfg.try_other_above_bits,
                          keep_order=cfg.keep_order, zstd_level=cfg.zstd_level)


def _rangeimage(cfg: CodecConfig) -> Any:
    from pipeline.codecs.rangeimage import RangeImageCodec

    return RangeImageCodec(zstd_level=cfg.zstd_level)


CODECS: dict[str, Callable[[CodecConfig], Any]] = {"quantized": _quantized, "rangeimage": _rangeimage}


def make_codec(name: str, config: CodecConfig | None = None) -> Any:
    """The codec ``name`` (``quantized`` or ``rangeimage``) built from ``config``."""
    if name not in CODECS:
        raise CodecError(f"unknown codec {name!r}; codecs: {', '.join(CODECS)}")
    return CODECS[name](config or CodecConfig())


def codec_of(blob: bytes | bytearray | memoryview) -> str:
    """Name of the codec that made ``blob`` (checks the header, not the CRC)."""
    from pipeline.codecs._container import peek

    return peek(blob).codec
