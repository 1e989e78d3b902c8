"""The renderer: planes seen through the simulated camera, composed into frames.

Every camera pixel's ray is intersected with a plane once per camera (the renderer
keeps the undistorted pixel grid and the belt coordinates of every pixel); a frame
is then only affine maps, ``cv2.remap`` of pre-drawn textures and the optics. That
is what makes the moving-belt demo cheap: a :class:`MaskSprite` is built once and
:meth:`Renderer.compose` places it anew for every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from vision.calibration import Calibration
from vision.spec import PrototypeSpec
from vision.synth.belt import LUM_SCALE, BeltTexture, belt_key, belt_map, make_belt_texture
from vision.synth.camera import SimCamera, belt_field, plane_coords, undistorted_grid
from vision.synth.fields import RowField
from vision.synth.mask_sprite import MaskSprite, Placement
from vision.synth.optics import (
    NoiseDraw,
    blur_margin_px,
    finish,
    finish_rows,
    gain_key,
    jpeg_encode,
    light_gain_field,
    make_noise_bank,
)
from vision.synth.params import LookParams, MaskParams
from vision.synth.truth import DefectTruth, GroundTruth, MaskTruth

#: Belt textures (2 MB each) and light-gain fields (2 MB each) kept per renderer: a
#: demo keeps one look, a dataset changes it every frame, so more would only hold memory.
_BELT_CACHE = 3
_GAIN_CACHE = 3
#: Frame rows rendered at a time. A whole 2028 × 1520 frame in float32 needs about
#: 150 MB of scratch buffers; a band of 128 rows needs about 12 MB, and its buffers
#: stay in the CPU's cache. Bands give the same pixels as a whole frame.
BAND_ROWS = 128
#: Pixels between the samples of the belt coordinates (the lens distortion is smooth).
BELT_STEP_PX = 4


@dataclass(frozen=True)
class _Paste:
    """A placement prepared for one frame: belt mm → sprite pixel map and pixel box."""

    placement: Placement
    affine: np.ndarray
    rows: slice
    cols: slice


class Renderer:
    """Renders belt scenes and calibration boards for one :class:`SimCamera`.

    Construction costs a few tenths of a second (the belt coordinates of every
    pixel, the noise bank); keep one renderer per camera and reuse it. It holds
    caches only for its own camera (about 20 MB for the default camera), so it is
    safe to keep several renderers for several cameras.
    """

    def __init__(self, camera: SimCamera | None = None, scene_mm_per_px: float = 0.1) -> None:
        self.camera = camera or SimCamera()
        self.scene_mm_per_px = float(scene_mm_per_px)
        self.calibration: Calibration = self.camera.calibration()
        self._belt: RowField = belt_field(self.camera, BELT_STEP_PX)
        self._und: np.ndarray | None = None  # full undistorted grid, for boards only
        self._noise = make_noise_bank(self.camera.width_px, self.camera.height_px)
        samples = self._belt.rows_data
        bx, by = samples[..., 0], samples[..., 1]
        self.view_bounds_mm = (
            float(bx.min()) - 2.0,
            float(by.min()) - 2.0,
            float(bx.max()) + 2.0,
            float(by.max()) + 2.0,
        )
        self._belts: dict[tuple, BeltTexture] = {}
        self._gains: dict[tuple, RowField] = {}

    # -- planes ---------------------------------------------------------------------
    @property
    def belt_mm(self) -> np.ndarray:
        """Belt coordinates (X, Y) in mm of every camera pixel, (H, W, 2) float32.

        Expanded on each call from the samples the renderer keeps (25 MB for the
        default camera): for tests and tools, not for per-frame work.
        """
        return self._belt.full()

    def plane_mm(self, rvec: np.ndarray, tvec_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plane coordinates of every pixel's ray hit for a plane at pose (rvec, tvec).

        Returns ((H, W, 2) float32 mm, (H, W) bool valid). Used for chessboards held
        at any angle; the exact undistorted grid is computed at the first call.
        """
        if self._und is None:
            self._und = undistorted_grid(self.camera).astype(np.float32)
        rot = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]
        return plane_coords(self._und, rot, np.asarray(tvec_mm, np.float64))

    # -- scene parts ----------------------------------------------------------------
    def _belt_texture(self, look: LookParams) -> BeltTexture:
        key = belt_key(look)
        tex = self._belts.get(key)
        if tex is None:
            tex = make_belt_texture(self.view_bounds_mm, look)
            _remember(self._belts, key, tex, _BELT_CACHE)
        return tex

    def _gain(self, look: LookParams) -> RowField:
        key = gain_key(look)
        gain = self._gains.get(key)
        if gain is None:
            gain = light_gain_field(self.camera.width_px, self.camera.height_px, look)
            _remember(self._gains, key, gain, _GAIN_CACHE)
        return gain

    def belt_radiance(self, look: LookParams, belt_offset_mm: float = 0.0) -> np.ndarray:
        """The empty belt as seen by the camera, before light and sensor: (H, W, 3) float32."""
        belt_mm = self._belt.full()
        return self._belt_rows(belt_mm, self._belt_texture(look), look, belt_offset_mm)

    @staticmethod
    def _belt_rows(
        belt_mm: np.ndarray, tex: BeltTexture, look: LookParams, belt_offset_mm: float
    ) -> np.ndarray:
        """Belt radiance of the pixels whose belt coordinates are ``belt_mm``."""
        tex_map = belt_map(belt_mm, tex, belt_offset_mm)
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
        so that, in a sequence, the belt moves with the masks. The frame is rendered
        in bands of :data:`BAND_ROWS` rows, each with the lens blur's margin.
        """
        cam = self.camera
        h, w = cam.height_px, cam.width_px
        noise = NoiseDraw.draw(rng)
        tex = self._belt_texture(look)
        gain = self._gain(look)
        body = np.zeros((h, w), np.uint8)
        frame = np.empty((h, w, 3), np.uint8)
        pastes = [self._prepare(p) for p in placements]
        seen = [False] * len(pastes)
        margin = blur_margin_px(look)
        for y0 in range(0, h, BAND_ROWS):
            core = slice(y0, min(y0 + BAND_ROWS, h))
            rows = slice(max(y0 - margin, 0), min(core.stop + margin, h))
            belt_mm = self._belt.rows(rows.start, rows.stop)
            radiance = self._belt_rows(belt_mm, tex, look, belt_offset_mm)
            for i, paste in enumerate(pastes):
                if paste is not None and self._paste(radiance, belt_mm, rows, body, paste, look):
                    seen[i] = True
            frame[core] = finish_rows(
                radiance, core, rows, look, noise, self._noise, gain.rows(rows.start, rows.stop)
            )
        encoded = jpeg_encode(frame, look)
        if encoded is not None:
            del frame  # the raw frame goes before the decoded one is made
            frame = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        truths = [
            self._truth(p.placement)
            for p, hit in zip(pastes, seen, strict=True)
            if p is not None and hit
        ]
        gt = GroundTruth(truths, body, self.calibration.version, float(belt_offset_mm))
        return frame, gt

    def _prepare(self, placement: Placement) -> _Paste | None:
        """The sprite's affine map and pixel box; None if it is wholly out of view."""
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
        return _Paste(placement, m, *roi)

    @staticmethod
    def _paste(
        radiance: np.ndarray,
        belt_mm: np.ndarray,
        rows: slice,
        body: np.ndarray,
        paste: _Paste,
        look: LookParams,
    ) -> bool:
        """Remap the part of one sprite within frame rows ``rows`` into the band.

        Returns whether any of the mask's body landed there.
        """
        top, bottom = max(paste.rows.start, rows.start), min(paste.rows.stop, rows.stop)
        if top >= bottom:
            return False
        local = slice(top - rows.start, bottom - rows.start)
        cs = paste.cols
        sprite = paste.placement.sprite
        tex_map = cv2.transform(belt_mm[local, cs], paste.affine)
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
        win = radiance[local, cs]
        cv2.multiply(win, cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR), dst=win)
        cv2.add(win, colour, dst=win, dtype=cv2.CV_32F)
        inside = cv2.threshold(body_cov, 127, 255, cv2.THRESH_BINARY)[1]
        cv2.max(body[top:bottom, cs], inside, dst=body[top:bottom, cs])
        return bool(inside.any())

    def _truth(self, placement: Placement) -> MaskTruth:
        """The placed mask's ground truth, ``partial`` if its body leaves the frame."""
        sprite = placement.sprite
        p = sprite.params
        cx, cy = placement.center_mm
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
        return finish(radiance, look, rng, self._noise, self._gain(look).full())


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
