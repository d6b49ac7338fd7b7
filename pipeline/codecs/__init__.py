"""Codecs for point data: a lossless sensor-native range-image codec for LiDAR packets and a
quantized XYZ codec with a stated error bound, behind one registry (:data:`CODECS`).

Every encoded blob starts with the same 24-byte header (magic, version, codec, counts, CRC32);
:func:`codec_of` names the codec of a blob, :func:`make_codec` builds one from config.
"""

from __future__ import annotations

__all__ = ["CODECS", "CodecConfig", "codec_of", "make_codec"]

from pipeline.codecs._config import CODECS, CodecConfig, codec_of, make_codec
