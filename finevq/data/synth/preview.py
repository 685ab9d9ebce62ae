"""The `finevq synth --preview` contact sheet: for every subtype, a few frames of a distorted clip
side by side with the same frames of its clean source, as one PNG."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw

from finevq.data.synth.content import Scene, SceneOptions, render, sample_scene
from finevq.data.synth.distortions import DISTORTIONS, ClipContext, apply_distortions
from finevq.taxonomy import SPECIFIC_SUBTYPES

_TILE_WIDTH = 200
_LABEL_WIDTH = 170
_SHOWN_FRAMES = (3, 8, 13)


def preview_scene(seed: int = 0) -> Scene:
    """A 16-frame panning training-photo scene, the source every row of the sheet distorts."""
    options = SceneOptions(min_side=240, max_side=300, min_fps=30, max_fps=30, max_frames=16, procedural_share=0.0)
    return sample_scene(np.random.default_rng([seed, 7]), "train", options, moving=True)


def write_preview(path: str | os.PathLike, seed: int = 0, severity: float = 0.8) -> str:
    """Write the contact sheet to `path` (PNG) and return the path: one row per subtype, each shown
    frame as a (clean | distorted) pair of native-resolution centre crops."""
    scene = preview_scene(seed)
    clip = render(scene)
    context = ClipContext(Fraction(scene.fps), clip.motion)
    tile_height = min(150, scene.height)
    top, left = (scene.height - tile_height) // 2, max(0, (scene.width - _TILE_WIDTH) // 2)
    sheet = Image.new("RGB", (_LABEL_WIDTH + 2 * len(_SHOWN_FRAMES) * _TILE_WIDTH,
                              len(SPECIFIC_SUBTYPES) * (tile_height + 4) + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for column, frame_index in enumerate(_SHOWN_FRAMES):
        x = _LABEL_WIDTH + 2 * column * _TILE_WIDTH
        draw.text((x + 4, 4), f"frame {frame_index}: clean | distorted", fill="black")
    rng = np.random.default_rng([seed, 8])
    for row, subtype in enumerate(SPECIFIC_SUBTYPES):
        params = DISTORTIONS[subtype].sample(severity, rng)
        distorted = apply_distortions(clip.frames, [(subtype, params)], context)
        y = 20 + row * (tile_height + 4)
        draw.text((6, y + tile_height // 2 - 12), f"{subtype}\n{params.get('method', params.get('codec', ''))}",
                  fill="black")
        for column, frame_index in enumerate(_SHOWN_FRAMES):
            x = _LABEL_WIDTH + 2 * column * _TILE_WIDTH
            for offset, frames in enumerate((clip.frames, distorted)):
                # A native-resolution crop: resizing would hide noise, blocks and moire.
                tile = Image.fromarray(frames[frame_index, top:top + tile_height, left:left + _TILE_WIDTH])
                sheet.paste(tile, (x + offset * _TILE_WIDTH, y))
    sheet.save(path)
    return str(path)
