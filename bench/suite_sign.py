"""Chunk signing: our chunk build (SHA-256 of the payload, deterministic CBOR header,
COSE_Sign1 with Ed25519) against the bare minimum the same guarantees need (one
``hashlib.sha256`` of the payload plus one raw ``nacl`` Ed25519 signature of a header-sized
message), by chunk size, on raw VLP-16 packet bytes from the fixture capture.

Also: zstd level 3 compression of the same bytes (a cheap lower bound of a pipeline's CPU
cost per byte) and the share of CPU that signing+hashing takes beside it: share = t_sign /
(t_sign + t_zstd3). zstd is timed on unrepeated packet bytes (up to the 1.7 MB the captures
hold) and scaled linearly to the chunk size: on repeated bytes it would find the repeats and
look unrealistically fast.

**Against the real pipeline codec** (``pipeline.codecs`` range image, which encodes every raw
LiDAR packet window the runtime keeps): per capture (VLP-16, OS-1-128), its encode cost per
raw byte and its compression ratio on all the capture's packets, then per chunk size (1 MiB of
raw packets, and one ``chunking.window_s`` window at the capture's data rate, which is how the
runtime actually cuts raw chunks) the share = t_sign(encoded payload) / (t_sign + t_encode).

Recommended chunk size: the smallest size where the fixed per-chunk cost (signature, header,
per-file fsyncs in the store suite) is below ~5 % of the per-byte cost; see the ``recommend`` row.
"""

from __future__ import annotations

import hashlib
import time

from bench._harness import Row, measure, ratio_row
from bench._provenance_data import SIZES, payload, source_name, unique_prefix

SUITE = "sign"


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    import nacl.signing
    import zstandard

    from agent.keys import Ed25519Signer
    from agent.provenance import GENESIS, ChunkSpec, build_chunk

    signer = Ed25519Signer(bytes(range(32)))
    raw = nacl.signing.SigningKey(bytes(range(32)))
    zc = zstandard.ZstdCompressor(level=3)
    rows: list[Row] = []
    per_chunk_fixed = None
    src = source_name(input)
    for label, size in SIZES:
        data = payload(size, input)
        spec = ChunkSpec("lidar/vlp16", "velodyne-vlp16", 1, 2, data, codec="raw-packets",
                         codec_params={"framing": "u16 length"}, tile="14/8716/5685",
                         bbox=(11.5, 48.1, 11.6, 48.2), counts={"packets": size // 1206})
        header_len = len(build_chunk(signer, spec, 0, GENESIS).cose)

        def ours() -> object:
            return build_chunk(signer, spec, 7, GENESIS)

        msg = bytes(header_len)

        def reference() -> object:
            return hashlib.sha256(data).digest(), raw.sign(msg)

        t_ours, _ = measure(ours, min_seconds=0.3)
        t_ref, _ = measure(reference, min_seconds=0.3)
        uniq = unique_prefix(size, input)
        t_zu, comp = measure(lambda: zc.compress(uniq), min_seconds=0.3)
        t_z = t_zu * size / len(uniq)
        mb = size / 1e6
        case = f"{label} ({src})"
        rows.append(ratio_row(SUITE, case, "chunks/s", "1/s", 1 / t_ours, 1 / t_ref, "hashlib+nacl raw"))
        rows.append(ratio_row(SUITE, case, "throughput", "MB/s", mb / t_ours, mb / t_ref, "hashlib+nacl raw"))
        rows.append(ratio_row(SUITE, case, "zstd-3 stand-in", "MB/s", mb / t_z, None, None))
        rows.append(ratio_row(SUITE, case, "sign share of CPU", "%", 100 * t_ours / (t_ours + t_z), None,
                              None, better="lower"))
        rows.append(ratio_row(SUITE, case, "zstd-3 ratio", "x", len(uniq) / len(comp), None, None))
        if per_chunk_fixed is None:
            # Fixed cost per chunk: time of a 0-byte chunk.
            empty = ChunkSpec("lidar/vlp16", "velodyne-vlp16", 1, 2, b"", tile="t", bbox=(0, 0, 1, 1))
            per_chunk_fixed, _ = measure(lambda: build_chunk(signer, empty, 7, GENESIS), min_seconds=0.3)
            rows.append(ratio_row(SUITE, "0 B", "fixed cost per chunk", "us", per_chunk_fixed * 1e6, None, None,
                                  better="lower"))
        rows.append(ratio_row(SUITE, case, "fixed share", "%", 100 * per_chunk_fixed / t_ours, None, None,
                              better="lower"))
    if not input:
        rows += _codec_rows(signer)
    return rows


def _codec_rows(signer) -> list[Row]:  # type: ignore[no-untyped-def]
    """Signing+hashing beside the range-image codec's encode, per capture and chunk size."""
    from agent.provenance import GENESIS, ChunkSpec, build_chunk
    from bench._provenance_data import FIXTURES
    from pipeline.chunking import ChunkingConfig
    from pipeline.codecs import make_codec
    from pipeline.codecs.rangeimage import layout_for
    from sensors.packets import open_packet_source

    window_s = ChunkingConfig().window_s
    codec = make_codec("rangeimage")
    rows: list[Row] = []
    captures = [("VLP-16", FIXTURES / "lidar" / "velodyne" / "vlp16_county_fair.pcap", None),
                ("OS-1-128", FIXTURES / "lidar" / "ouster" / "OS-1-128_v2.3.0_1024x10_lb_n3.pcap",
                 FIXTURES / "lidar" / "ouster" / "OS-1-128_v2.3.0_1024x10.json")]
    for name, pcap, meta in captures:
        if not pcap.exists() or (meta is not None and not meta.exists()):
            continue
        with open_packet_source(str(pcap)) as src:
            packets = list(src)
        layout = layout_for(packets, str(meta) if meta else None)
        raw = sum(len(p.data) for p in packets)
        span = packets[-1].timestamp - packets[0].timestamp
        rate = raw / span * len(packets) / max(1, len(packets) - 1)  # bytes per second of capture
        t0 = time.perf_counter()
        codec.encode(packets[:64], layout)  # JIT or cache load, outside the timings
        rows.append(Row(SUITE, f"rangeimage {name}", "first call", "s", time.perf_counter() - t0, better="lower"))
        t_enc_all, blob = measure(lambda p=packets, lay=layout: codec.encode(p, lay), min_seconds=0.3)
        per_byte = t_enc_all / raw
        ratio = raw / len(blob)
        rows.append(ratio_row(SUITE, f"rangeimage {name}", "encode", "MB/s", raw / t_enc_all / 1e6, None, None))
        rows.append(ratio_row(SUITE, f"rangeimage {name}", "compression", "x", ratio, None, None))
        for label, size in [("1 MiB raw", 1 << 20), (f"{window_s:g} s window ({rate / 1e6:.2f} MB/s raw)",
                                                       int(rate * window_s))]:
            enc = payload(max(1, int(size / ratio)))
            spec = ChunkSpec("lidar/x", name, 1, 2, enc, codec="rangeimage", codec_params={"packets": 1},
                             tile="14/8716/5685", bbox=(11.5, 48.1, 11.6, 48.2), counts={"packets": 1})
            t_sign, _ = measure(lambda sp=spec: build_chunk(signer, sp, 7, GENESIS), min_seconds=0.3)
            t_enc = per_byte * size
            case = f"rangeimage {name}, {label}"
            rows.append(ratio_row(SUITE, case, "sign share of CPU", "%", 100 * t_sign / (t_sign + t_enc), None,
                                  None, better="lower"))
    return rows
