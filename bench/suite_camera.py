"""Camera keyframe stage: what one keyframe costs, step by step, on the nuScenes frames
(1600x900) or the JPEG/PNG images in the folder given with ``--input``.

Rows:
- decode: OpenCV ``imdecode`` against Pillow's decode of the same JPEG bytes.
- blur measure (Laplacian variance at 640 px) against the same measure at full size.
- detection (all default cascades: frontal face, two plate cascades, full body) at full size
  and with ``detect_max_side`` 960/640, in frames/s, boxes found and how many of the full-size
  boxes the faster setting still hides (>= 90 % of each box's area): the reference is full size.
- JPEG with EXIF: ours (OpenCV encode + piexif APP1) against Pillow's ``save(quality, exif)``.
- the whole stage per keyframe, and per frame that is not due (the cheap path: no decode).
No JIT here (OpenCV and piexif only); the first call loads the cascades and is its own row.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from bench._harness import Row, measure, ratio_row

SUITE = "camera"
SIDES = (960, 640)


def _frames(input: str | None) -> list[tuple[str, bytes]]:
    from bench._clouds import FIXTURES

    folder = Path(input) if input else FIXTURES / "camera" / "nuscenes"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return [(p.name, p.read_bytes()) for p in files[:6]]


def _covered(ref: list, found: list, margin: float, w: int, h: int) -> int:
    """How many full-size boxes (per frame ``ref``) the regions hidden after ``found`` cover to
    at least 90 % of their area: recall of a faster setting measured against full size."""
    n = 0
    for boxes, other in zip(ref, found, strict=True):
        mask = np.zeros((h, w), bool)
        for r in (b.grown(margin, w, h) for b in other):
            mask[r.y : r.y + r.h, r.x : r.x + r.w] = True
        n += sum(mask[b.y : b.y + b.h, b.x : b.x + b.w].mean() >= 0.9 for b in boxes)
    return n


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Rows over the fixture frames (or ``input``, a folder of images); ``meta`` is unused."""
    import cv2
    from PIL import Image

    from agent.bus.messages import CameraFrame, FixType, GnssFix
    from pipeline.camera import CameraProcessingConfig, camera_stage_from_config
    from pipeline.camera.blur import laplacian_variance
    from pipeline.camera.exif import build_exif
    from pipeline.camera.keyframes import Position
    from pipeline.camera.redact import Redactor, detector_from_config

    rows: list[Row] = []
    frames = _frames(input)
    n = len(frames)
    images = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for _, b in frames]
    h, w = images[0].shape[:2]
    case = f"{n} frames {w}x{h}"

    t_cv, _ = measure(
        lambda: [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for _, b in frames], 0.5
    )
    t_pil, _ = measure(lambda: [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for _, b in frames], 0.5)
    rows.append(ratio_row(SUITE, case, "JPEG decode", "frames/s", n / t_cv, n / t_pil, "Pillow"))

    t_small, _ = measure(lambda: [laplacian_variance(im, 640) for im in images], 0.3)
    t_full, _ = measure(lambda: [laplacian_variance(im, 100_000) for im in images], 0.3)
    rows.append(
        ratio_row(
            SUITE,
            case,
            "blur measure (640 px vs full size)",
            "frames/s",
            n / t_small,
            n / t_full,
            "same at full size",
        )
    )

    cfg = CameraProcessingConfig()
    t0 = time.perf_counter()
    full = detector_from_config(cfg.redaction)
    rows.append(
        Row(SUITE, case, "load cascades (first call)", "ms", (time.perf_counter() - t0) * 1e3, better="lower")
    )
    t_det, found = measure(lambda: [full.detect(im) for im in images], 0.0, 1)
    boxes_full = sum(len(f) for f in found)
    kinds: dict[str, int] = {}
    for f in found:
        for b in f:
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
    rows.append(
        Row(
            SUITE,
            case,
            f"detect full size ({boxes_full} boxes: "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + ")",
            "frames/s",
            n / t_det,
        )
    )
    for side in SIDES:
        det = detector_from_config(cfg.redaction.model_copy(update={"detect_max_side": side}))
        t_s, found_s = measure(lambda det=det: [det.detect(im) for im in images], 0.0, 1)
        covered = _covered(found, found_s, cfg.redaction.margin, w, h)
        rows.append(
            ratio_row(
                SUITE,
                case,
                f"detect at {side} px ({sum(len(f) for f in found_s)} boxes, "
                f"hides {covered}/{boxes_full} full-size boxes)",
                "frames/s",
                n / t_s,
                n / t_det,
                "full size",
            )
        )

    red = Redactor(full).redact(images[0])
    pos = Position(1532402927_000_000_000, 1.2985, 103.788, 15.0, 45.0, 10.0, 0.0, 0.7)
    exif = build_exif(pos, model="front")
    t_ours, jpeg = measure(lambda: red.to_jpeg(85, exif), 0.5)
    rgb = Image.fromarray(np.ascontiguousarray(red.image[:, :, ::-1]))
    t_ref, _ = measure(lambda: rgb.save(io.BytesIO(), "JPEG", quality=85, exif=exif), 0.5)
    rows.append(
        ratio_row(
            SUITE,
            f"1 frame {w}x{h}",
            "JPEG q85 + GPS EXIF encode",
            "frames/s",
            1 / t_ours,
            1 / t_ref,
            "Pillow save(exif=)",
        )
    )
    rows.append(Row(SUITE, f"1 frame {w}x{h}", "keyframe JPEG size", "kB", len(jpeg) / 1e3, better="lower"))

    # the whole stage: every frame due (a keyframe each), then none due (after the first)
    base = 1532402927_000_000_000

    def stage(every_m: float):  # type: ignore[no-untyped-def]
        st = camera_stage_from_config(
            CameraProcessingConfig(keyframe_every_m=every_m, min_interval_s=0.0, blur_threshold=0.0)
        )
        for k in range(3):
            st.add_fix(
                GnssFix(
                    lat_deg=1.0 + k * 1e-3,
                    lon_deg=103.0,
                    alt_m=5.0,
                    fix_type=FixType.GPS,
                    speed_mps=100.0,
                    course_deg=0.0,
                    fix_utc_ns=base + k * 10**9,
                )
            )
        return st

    msgs = [
        CameraFrame(
            camera_id="c", width=w, height=h, jpeg=b, frame_index=i, utc_ns=base + (i + 1) * 10_000_000
        )
        for i, (_, b) in enumerate(frames * 8)
    ]
    every = stage(0.5)
    t_kf, kept = measure(lambda: sum(every.process(m).keyframe is not None for m in msgs[:n]), 0.0, 1)
    rows.append(Row(SUITE, case, f"stage, every frame a keyframe ({kept} kept)", "frames/s", n / t_kf))
    never = stage(1e6)
    never.process(CameraFrame(camera_id="c", width=w, height=h, jpeg=frames[0][1], utc_ns=base))  # the first
    t_nd, kept = measure(lambda: sum(never.process(m).keyframe is not None for m in msgs), 0.3)
    rows.append(Row(SUITE, case, f"stage, frames not due ({kept} kept)", "frames/s", len(msgs) / t_nd))
    return rows
