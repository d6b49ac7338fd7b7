"""A simple forward camera: the scene's boxes and poles drawn as flat-shaded polygons
(painter's algorithm, near-plane clipping) over a sky gradient and a grey road, JPEG-encoded
with OpenCV. Not photorealistic: enough for keyframing, blurring and viewing tests."""

from __future__ import annotations

import numpy as np

from sensors.simulator._scene import Scene

_NEAR = 0.3
_FAR = 90.0
# Box faces as corner indices; corners are (x0|x1, y0|y1, z0|z1) by bit (1, 2, 4).
_FACES = ((0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5), (4, 5, 7, 6))
_NORMALS = np.array([[0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
_LIGHT = np.array([0.4, -0.5, 0.77])


class CameraRenderer:
    """Renders ``width`` x ``height`` frames with focal length ``focal_px`` (pixels)."""

    def __init__(
        self,
        scene: Scene,
        width: int = 640,
        height: int = 360,
        focal_px: float = 420.0,
        mount: tuple[float, float, float] = (1.0, 0.0, 1.5),
        seed: int = 0,
        quality: int = 85,
    ) -> None:
        self.scene = scene
        self.width = width
        self.height = height
        self.f = focal_px
        self.mount = mount
        self.quality = quality
        rng = np.random.default_rng(seed + 104729)
        hues = rng.uniform(0.6, 1.0, size=(len(scene.boxes), 3))
        base = scene.box_reflectivity.astype(np.float64)[:, None] / 255.0 * 150.0 + 70.0
        self.box_color = np.clip(base * hues, 0, 255)
        for i, kind in enumerate(scene.box_kind):
            if kind == "car":
                self.box_color[i] = rng.uniform(30, 230, size=3)
        self._sky = self._background()
        b = scene.boxes
        corners = np.stack(
            [
                np.stack(
                    [b[:, 0 + 3 * (k & 1)], b[:, 1 + 3 * ((k >> 1) & 1)], b[:, 2 + 3 * ((k >> 2) & 1)]],
                    axis=-1,
                )
                for k in range(8)
            ],
            axis=1,
        )  # (M, 8, 3)
        self._faces = corners[:, np.array(_FACES)]  # (M, 5, 4, 3)
        self._shade = 0.55 + 0.45 * np.maximum(0.0, _NORMALS @ _LIGHT)

    def _background(self) -> np.ndarray:
        h, w = self.height, self.width
        img = np.empty((h, w, 3), dtype=np.uint8)
        horizon = h // 2
        ramp = np.linspace(0.0, 1.0, horizon)[:, None]
        sky_top, sky_bottom = np.array([200, 140, 90]), np.array([235, 215, 190])  # BGR
        img[:horizon] = (sky_top * (1 - ramp) + sky_bottom * ramp)[:, None, :].astype(np.uint8)
        img[horizon:] = (95, 95, 100)
        return img

    def render(self, x: float, y: float, yaw: float) -> np.ndarray:
        """A BGR image from the vehicle pose (x, y, yaw) in the scene frame."""
        import cv2

        img = self._sky.copy()
        c, s = np.cos(yaw), np.sin(yaw)
        mx, my, mz = self.mount
        cam = np.array([x + mx * c - my * s, y + mx * s + my * c, mz])
        fwd = np.array([c, s, 0.0])
        right = np.array([s, -c, 0.0])
        down = np.array([0.0, 0.0, -1.0])
        rot = np.stack([right, down, fwd])  # world offset -> camera (X right, Y down, Z forward)
        polys: list[tuple[float, np.ndarray, tuple[int, int, int]]] = []
        keep = self.scene.near_mask(float(cam[0]), float(cam[1]), _FAR)[0] if len(self.scene.boxes) else None
        if keep is not None and keep.any():
            idx = np.nonzero(keep)[0]
            faces = self._faces[idx]  # (B, 5, 4, 3) world corners of each face
            centres = faces.mean(axis=2)
            facing = np.einsum("fk,bfk->bf", _NORMALS, cam - centres) > 0
            pc = (faces - cam) @ rot.T  # camera coordinates
            zs = pc[..., 2]
            vis = facing & (zs.max(axis=2) >= _NEAR)
            dist = np.linalg.norm(centres - cam, axis=2)
            for b, f in zip(*np.nonzero(vis)):
                color = tuple(int(v) for v in self.box_color[idx[b]] * self._shade[f])
                poly = pc[b, f] if zs[b, f].min() >= _NEAR else _clip_near(pc[b, f])
                if poly is not None:
                    polys.append((float(dist[b, f]), poly, color))
        for cyl, refl in zip(self.scene.cylinders, self.scene.cylinder_reflectivity):
            d = np.hypot(cyl[0] - cam[0], cyl[1] - cam[1])
            if d > _FAR:
                continue
            quad = np.array([[cyl[0], cyl[1], cyl[3]], [cyl[0], cyl[1], cyl[4]]])
            side = right * cyl[2]
            pts = np.array([quad[0] - side, quad[1] - side, quad[1] + side, quad[0] + side])
            poly = _clip_near((pts - cam) @ rot.T)
            if poly is not None:
                g = int(60 + int(refl) // 3)
                polys.append((float(d), poly, (g, g, g)))
        polys.sort(key=lambda p: -p[0])
        cx, cy = self.width / 2.0, self.height / 2.0
        for _, poly, color in polys:
            uv = np.stack(
                [self.f * poly[:, 0] / poly[:, 2] + cx, self.f * poly[:, 1] / poly[:, 2] + cy], axis=1
            )
            uv = np.clip(uv, -10000, 10000)
            cv2.fillPoly(img, [np.round(uv * 16).astype(np.int32)], color, lineType=cv2.LINE_AA, shift=4)
        return img

    def jpeg(self, x: float, y: float, yaw: float) -> bytes:
        import cv2

        ok, buf = cv2.imencode(".jpg", self.render(x, y, yaw), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid image
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()


def _clip_near(poly: np.ndarray) -> np.ndarray | None:
    """Clip a convex polygon (camera coordinates) to Z >= near (Sutherland-Hodgman)."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= _NEAR, b[2] >= _NEAR
        if ina:
            out.append(a)
        if ina != inb:
            t = (_NEAR - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if len(out) >= 3 else None
