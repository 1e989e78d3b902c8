"""Photo-realistic, deterministic simulator of the inspection camera.

Drives the demo, the tests, the measurement evaluation and the classifier's
training set. Typical use::

    renderer = Renderer(SimCamera())            # once per camera (≈ 0.5 s)
    rng = np.random.default_rng(seed)
    masks = sample_scene(rng, "hole")            # or [sample_mask(rng)], or [MaskParams(...)]
    image, truth = renderer.render(masks, sample_look(rng), rng)
    calibration = renderer.calibration           # exact, matches the drawing

For a moving belt, build the sprite once and compose it at each position::

    sprite = renderer.make_sprite(masks[0], rng)
    frame, truth = renderer.compose([sprite.placed(center_mm=(0, y))], look, rng, belt_offset_mm=y)

Same seed → identical bytes. Mask coordinates: mm from the body's top-left corner,
x along the width; belt coordinates: mm, X along the image width, Y along the image
height (the travel direction), origin at the point seen at the image centre.
"""

from vision.synth.camera import SimCamera
from vision.synth.chessboard import (
    board_on_belt_pose,
    render_chessboard,
    sample_board_poses,
)
from vision.synth.mask_sprite import MaskSprite, Placement
from vision.synth.params import (
    LOOP_STATES,
    MASK_DEFECT_KINDS,
    PRINT_KINDS,
    SCENE_KINDS,
    SIDES,
    DefectParams,
    LookParams,
    MaskParams,
)
from vision.synth.render import Renderer
from vision.synth.sampling import apply_defect, sample_look, sample_mask, sample_scene
from vision.synth.truth import DefectTruth, GroundTruth, MaskTruth

__all__ = [
    "LOOP_STATES",
    "MASK_DEFECT_KINDS",
    "PRINT_KINDS",
    "SCENE_KINDS",
    "SIDES",
    "DefectParams",
    "DefectTruth",
    "GroundTruth",
    "LookParams",
    "MaskParams",
    "MaskSprite",
    "MaskTruth",
    "Placement",
    "Renderer",
    "SimCamera",
    "apply_defect",
    "board_on_belt_pose",
    "render_chessboard",
    "sample_board_poses",
    "sample_look",
    "sample_mask",
    "sample_scene",
]
