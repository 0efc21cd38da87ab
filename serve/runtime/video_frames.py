"""What ``dpst video`` does to each frame, torch-free: the model with its grid smoothed over
time, or one exported 3D LUT.

Stylised one by one, frames flicker: the model predicts a bilateral grid of affine colour maps
from each frame, and small changes of content (noise, a moving object, compression) move the
grid. :class:`SmoothedGrid` keeps an exponential moving average of the grids instead,

    average = smoothing * average + (1 - smoothing) * grid,

and every frame is rendered at full resolution with the average (blended with the identity
grid when less or more of the look is asked for, :mod:`dpst.serve.runtime.strength`). A scene cut
restarts the average (a new scene must not take the old one's colours for a second): a cut is
a frame whose working-size image (the model's own 256 px input) differs from the previous one
by more than ``scene_cut`` in mean absolute value (0..1). A pan or a zoom changes those small
images by a few hundredths; a cut, by a tenth or more.

Frames are ``(H, W, 3)`` uint8 RGB in and out, so a 1080p frame costs 6 MB, not 25.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dpst.constants import DEFAULT_STRENGTH
from dpst.errors import InputError
from dpst.serve.runtime import tiled_render
from dpst.serve.runtime.render_plan import RenderPlan, blend_plan
from dpst.serve.runtime.strength import check_strength


@dataclass(frozen=True)
class TemporalConfig:
    """How grids are smoothed over time.

    Attributes:
        smoothing: weight of the past in the moving average, in [0, 1); 0 stylises every frame
            on its own. The average forgets with a time constant of ``1 / (1 - smoothing)``
            frames (0.8: 5 frames, 0.2 s at 25 fps).
        scene_cut: mean absolute change (0..1) of the working-size image between two frames
            above which the average restarts; 1 or more never restarts.
    """

    smoothing: float = 0.8
    scene_cut: float = 0.1

    def validate(self) -> None:
        if not 0 <= self.smoothing < 1:
            raise InputError(f"--temporal-smoothing must be in [0, 1), got {self.smoothing}")
        if not self.scene_cut > 0:
            raise InputError(f"--scene-cut must be above 0, got {self.scene_cut}")


class SmoothedGrid:
    """The moving average of grids, restarted at scene cuts.

    Call it with each frame's working-size image ``(S, S, 3)`` float in [0, 1] and the plan
    predicted from it (:mod:`dpst.serve.runtime.render_plan`: the grid and any label maps are
    averaged); it returns the plan to render with. ``cuts`` counts the restarts.
    """

    def __init__(self, config: TemporalConfig) -> None:
        config.validate()
        self.config = config
        self.cuts = 0
        self._average: RenderPlan | None = None
        self._previous: np.ndarray | None = None

    def __call__(self, small: np.ndarray, plan: RenderPlan | np.ndarray) -> RenderPlan:
        """The average of the plans so far (a bare grid is a plan without label maps); the
        label weights are the frame's own (one region: the same every frame)."""
        plan = plan if isinstance(plan, RenderPlan) else RenderPlan(plan)
        cut = self._previous is not None and (
            float(np.mean(np.abs(small - self._previous))) > self.config.scene_cut
        )
        self._previous = small
        if self._average is None or cut:
            self.cuts += int(cut)
            self._average = RenderPlan(_copy(plan.grid), _copy(plan.label_maps), plan.label_weights)
        else:
            weight = np.float32(self.config.smoothing)
            mixed = [
                None if new is None else weight * old + (np.float32(1) - weight) * new
                for old, new in zip(self._average[:2], plan[:2], strict=True)
            ]
            self._average = RenderPlan(*mixed, plan.label_weights)
        return self._average


def _copy(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else array.astype(np.float32, copy=True)


class ModelFrames:
    """Frames stylised by a :class:`~dpst.serve.runtime.stylizer.FastStylizer` with one style
    code, the grid smoothed over time (one region: video uses no masks).

    ``strength``: how much of the look, in [0, 2]; the smoothed grid is blended with the
    identity, so the average itself is the model's.
    """

    def __init__(
        self,
        stylizer,
        code: tuple[np.ndarray, ...],
        config: TemporalConfig,
        strength: float = DEFAULT_STRENGTH,
    ) -> None:
        self.stylizer = stylizer
        self.code = code
        self.smoothed = SmoothedGrid(config)
        self.strength = check_strength(strength)
        # Clipped highlights kept as dpst fast keeps them (dpst.serve.runtime.highlights).
        self.highlights = stylizer.highlight_tint(code, self.strength)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """The frame at the model's working size, ``(S, S, 3)`` float32: the model's input
        (resizing it again to its own size is the identity) and the scene-cut test's.
        :func:`dpst.serve.runtime.video.process_video` calls it on the decoding thread."""
        small = tiled_render.working_image(frame, self.stylizer.working_size)
        return np.ascontiguousarray(small[0].transpose(1, 2, 0))

    def __call__(self, frame: np.ndarray, small: np.ndarray | None = None) -> np.ndarray:
        small = self.prepare(frame) if small is None else small
        plan = self.smoothed(small, self.stylizer.plan(small, self.code))
        plan = blend_plan(plan, self.strength)
        return self.stylizer.render(frame, plan, dtype=np.uint8, highlights=self.highlights)


class LutFrames:
    """Frames graded by one 3D LUT (a ``.cube`` file, read by :mod:`dpst.lut_io`),
    trilinear, with Pillow's ``Color3DLUT`` (values clipped to [0, 1])."""

    def __init__(self, path: str | os.PathLike) -> None:
        from PIL import ImageFilter

        from dpst.lut_io import read_cube

        lut = read_cube(path)  # [b, g, r]: red fastest, Pillow's order too
        self.lut = ImageFilter.Color3DLUT(lut.shape[0], lut.reshape(-1).tolist())

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.fromarray(frame).filter(self.lut))
