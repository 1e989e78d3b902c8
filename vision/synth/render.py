"""The renderer: planes seen through the simulated camera, composed into frames.

Every camera pixel's ray is intersected with a plane once per camera (the renderer
keeps the undistorted pixel grid and the belt coordinates of every pixel); a frame
is then only affine maps, ``cv2.remap`` of pre-drawn textures and the optics. That
is what makes the moving-belt demo cheap: a :class:`MaskSprite` is built once and
:meth:`Renderer.compose` places it anew for every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from vision.calibration import Calibration
from vision.spec import PrototypeSpec
from vision.synth.belt import LUM_SCALE, BeltTexture, belt_key, belt_map, make_belt_texture
from vision.synth.camera import SimCamera, plane_coords, undistorted_grid
from vision.synth.mask_sprite import MaskSprite, Placement
from vision.synth.optics import finish, gain_key, light_gain, make_noise_bank
from vision.synth.params import LookParams, MaskParams
from vision.synth.truth import DefectTruth, GroundTruth, MaskTruth

#: Belt textures (2 MB each) and full-size light maps (37 MB each) kept per renderer:
#: a demo keeps one look, a dataset changes it every frame, so more would only hold memory.
_BELT_CACHE = 3
_GAIN_CACHE = 1


class Renderer:
    """Renders belt scenes and calibration boards for one :class:`SimCamera`.

    Construction costs about half a second (undistorting every pixel, the noise
    bank); keep one renderer per camera and reuse it. It holds caches only for its
    own camera, so it is safe to keep several renderers for several cameras.
    """

    def __init__(self, camera: SimCamera | None = None, scene_mm_per_px: float = 0.1) -> None:
        self.camera = camera or SimCamera()
        self.scene_mm_per_px = float(scene_mm_per_px)
        self.calibration: Calibration = self.camera.calibration()
        und = undistorted_grid(self.camera)
        self._belt_mm, _ = plane_coords(und, self.camera.rotation, self.camera.tvec_mm)
        self._und = und.astype(np.float32)
        del und
        self._noise = make_noise_bank(self.camera.width_px, self.camera.height_px)
        bx, by = self._belt_mm[..., 0], self._belt_mm[..., 1]
        self.view_bounds_mm = (
            float(bx.min()) - 2.0,
            float(by.min()) - 2.0,
            float(bx.max()) + 2.0,
            float(by.max()) + 2.0,
        )
        self._belts: dict[tuple, BeltTexture] = {}
        self._gains: dict[tuple, np.ndarray] = {}

    # -- planes ---------------------------------------------------------------------
    @property
    def belt_mm(self) -> np.ndarray:
        """Belt coordinates (X, Y) in mm of every camera pixel, (H, W, 2) float32 (read-only)."""
        view = self._belt_mm.view()
        view.flags.writeable = False
        return view

    def plane_mm(self, rvec: np.ndarray, tvec_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plane coordinates of every pixel's ray hit for a plane at pose (rvec, tvec).

        Returns ((H, W, 2) float32 mm, (H, W) bool valid). Used for chessboards held
        at any angle; the belt's own map is precomputed in :attr:`belt_mm`.
        """
        rot = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]
        return plane_coords(self._und, rot, np.asarray(tvec_mm, np.float64))

    # -- scene parts ----------------------------------------------------------------
    def belt_radiance(self, look: LookParams, belt_offset_mm: float = 0.0) -> np.ndarray:
        """The empty belt as seen by the camera, before light and sensor: (H, W, 3) float32."""
        key = belt_key(look)
        tex = self._belts.get(key)
        if tex is None:
            tex = make_belt_texture(self.view_bounds_mm, look)
            _remember(self._belts, key, tex, _BELT_CACHE)
        tex_map = belt_map(self._belt_mm, tex, belt_offset_mm)
        lum = cv2.remap(tex.lum, tex_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        colour = np.asarray(look.belt_tint, np.float64) * (look.belt_level / LUM_SCALE)
        return cv2.multiply(cv2.cvtColor(lum, cv2.COLOR_GRAY2BGR), (*colour, 0.0), dtype=cv2.CV_32F)

    def make_sprite(
        self, params: MaskParams, rng: np.random.Generator, spec: PrototypeSpec | None = None
    ) -> MaskSprite:
        """Build a mask sprite at this renderer's texture scale."""
        return MaskSprite.build(params, rng, self.scene_mm_per_px, spec)

    # -- frames ---------------------------------------------------------------------
    def render(
        self,
        masks: Sequence[MaskParams],
        look: LookParams,
        rng: np.random.Generator,
        spec: PrototypeSpec | None = None,
        belt_offset_mm: float = 0.0,
    ) -> tuple[np.ndarray, GroundTruth]:
        """A fresh frame of ``masks`` on the belt, with its ground truth."""
        sprites = [self.make_sprite(m, rng, spec) for m in masks]
        return self.compose([s.placed() for s in sprites], look, rng, belt_offset_mm)

    def compose(
        self,
        placements: Sequence[Placement],
        look: LookParams,
        rng: np.random.Generator,
        belt_offset_mm: float = 0.0,
    ) -> tuple[np.ndarray, GroundTruth]:
        """Place pre-built sprites on the belt and photograph the result.

        ``belt_offset_mm`` scrolls the belt texture along +Y (the travel direction)
        so that, in a sequence, the belt moves with the masks.
        """
        cam = self.camera
        radiance = self.belt_radiance(look, belt_offset_mm)
        body = np.zeros((cam.height_px, cam.width_px), np.uint8)
        truths = []
        for placement in placements:
            truth = self._paste(radiance, body, placement, look)
            if truth is not None:
                truths.append(truth)
        frame = self.finish(radiance, look, rng)
        gt = GroundTruth(truths, body, self.calibration.version, float(belt_offset_mm))
        return frame, gt

    def _paste(
        self, radiance: np.ndarray, body: np.ndarray, placement: Placement, look: LookParams
    ) -> MaskTruth | None:
        """Remap one sprite into the frame; None if none of its body is in view."""
        sprite = placement.sprite
        g = sprite.grid
        p = sprite.params
        cx, cy = placement.center_mm
        a = np.deg2rad(placement.angle_deg)
        c, s = np.cos(a), np.sin(a)
        # belt mm → mask mm → sprite pixel, as one affine map.
        k = 1.0 / g.mm_per_px
        ox = p.width_mm / 2 - g.x0_mm
        oy = p.height_mm / 2 - g.y0_mm
        m = np.float32(
            [
                [c * k, s * k, (-c * cx - s * cy + ox) * k],
                [-s * k, c * k, (s * cx - c * cy + oy) * k],
            ]
        )
        corners = _rect_points(
            g.x0_mm, g.y0_mm, g.x0_mm + g.cols * g.mm_per_px, g.y0_mm + g.rows * g.mm_per_px
        )
        roi = self._roi(self._mask_to_belt(corners, placement), margin_px=3)
        if roi is None:
            return None
        rs, cs = roi
        tex_map = cv2.transform(self._belt_mm[rs, cs], m)
        colour = cv2.remap(
            sprite.colour, tex_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        aux = cv2.remap(
            sprite.aux,
            tex_map,
            None,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(255, 0, 0),
        )
        trans, shadow, body_cov = cv2.split(aux)
        # keep = (1 - alpha) * (1 - k * shadow) = transmission - k * (transmission * shadow)
        keep = np.multiply(trans, np.float32(1 / 255), dtype=np.float32)
        cv2.scaleAdd(shadow.astype(np.float32), -look.shadow / 255, keep, dst=keep)
        win = radiance[rs, cs]
        cv2.multiply(win, cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR), dst=win)
        cv2.add(win, colour, dst=win, dtype=cv2.CV_32F)
        inside = cv2.threshold(body_cov, 127, 255, cv2.THRESH_BINARY)[1]
        cv2.max(body[rs, cs], inside, dst=body[rs, cs])
        if not inside.any():
            return None
        outline = _rect_points(0.0, 0.0, p.width_mm, p.height_mm, step_mm=2.0)
        px = self.calibration.mm_to_px(self._mask_to_belt(outline, placement))
        w, h = self.camera.size_px
        partial = bool(
            np.any(px[:, 0] < 0)
            or np.any(px[:, 1] < 0)
            or np.any(px[:, 0] > w - 1)
            or np.any(px[:, 1] > h - 1)
        )
        defects = list(sprite.truth.defects)
        if partial:
            defects.append(
                DefectTruth("partial", p.width_mm / 2, p.height_mm / 2, p.width_mm, p.height_mm)
            )
        return replace(
            sprite.truth,
            center_mm=(float(cx), float(cy)),
            angle_deg=float(placement.angle_deg),
            defects=defects,
            partial=partial,
        )

    @staticmethod
    def _mask_to_belt(points_mm: np.ndarray, placement: Placement) -> np.ndarray:
        """Mask mm (N, 2) → belt mm (N, 2) for a placement."""
        p = placement.sprite.params
        a = np.deg2rad(placement.angle_deg)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        local = np.asarray(points_mm, np.float64) - (p.width_mm / 2, p.height_mm / 2)
        return local @ rot.T + np.asarray(placement.center_mm, np.float64)

    def _roi(self, belt_pts_mm: np.ndarray, margin_px: int) -> tuple[slice, slice] | None:
        """Pixel box around belt points (dense outline), clipped to the image."""
        px = self.calibration.mm_to_px(belt_pts_mm)
        w, h = self.camera.size_px
        x0 = max(int(np.floor(px[:, 0].min())) - margin_px, 0)
        y0 = max(int(np.floor(px[:, 1].min())) - margin_px, 0)
        x1 = min(int(np.ceil(px[:, 0].max())) + margin_px + 1, w)
        y1 = min(int(np.ceil(px[:, 1].max())) + margin_px + 1, h)
        if x1 <= x0 or y1 <= y0:
            return None
        return slice(y0, y1), slice(x0, x1)

    def finish(
        self, radiance: np.ndarray, look: LookParams, rng: np.random.Generator
    ) -> np.ndarray:
        """Light, lens blur, sensor noise and quantization (for callers with own scenes)."""
        key = gain_key(look)
        gain = self._gains.get(key)
        if gain is None:
            gain = light_gain(self.camera.width_px, self.camera.height_px, look)
            _remember(self._gains, key, gain, _GAIN_CACHE)
        return finish(radiance, look, rng, self._noise, gain)


def _remember(cache: dict, key: tuple, value: object, size: int) -> None:
    """Insert into a small FIFO cache (oldest entry evicted)."""
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _rect_points(x0: float, y0: float, x1: float, y1: float, step_mm: float = 5.0) -> np.ndarray:
    """Points along a rectangle's outline every ``step_mm`` (distortion bends edges)."""
    nx = max(int(np.ceil((x1 - x0) / step_mm)), 1)
    ny = max(int(np.ceil((y1 - y0) / step_mm)), 1)
    xs = np.linspace(x0, x1, nx + 1)
    ys = np.linspace(y0, y1, ny + 1)
    return np.concatenate(
        [
            np.stack([xs, np.full_like(xs, y0)], 1),
            np.stack([xs, np.full_like(xs, y1)], 1),
            np.stack([np.full_like(ys, x0), ys], 1),
            np.stack([np.full_like(ys, x1), ys], 1),
        ]
    )
