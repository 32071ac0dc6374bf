"""Section 6, "What the model learned": weight pictures (linear), first-layer units (mlp), first-layer
filters (convolutional models, the whitening patches included) and one class dream per class (every model).

Usage:
    section = learned_section(inputs, dream_steps=200, dream_seconds=10, seed=0, progress=True)
"""
from __future__ import annotations

import numpy as np

from sortnet.data.preprocess import Preprocessing
from sortnet.reporting.collect import ReportInputs
from sortnet.reporting.dreams import class_dreams
from sortnet.reporting.galleries import captioned_grid
from sortnet.reporting.html import Figure, Section
from sortnet.reporting.pictures import thumbnails, upscale_nearest
from sortnet.reporting.weights import (diverging_rgb, filter_tiles, first_dense_units, first_layer_filters,
                                    linear_class_pictures, linear_colour_pictures)

MAX_FILTERS = 64
TILE_PX = 84


def _cols(n: int) -> int:
    return int(min(10, max(1, n)))


def _linear_figures(inputs: ReportInputs) -> list[Figure]:
    pics = linear_class_pictures(inputs.model)
    if pics is None:
        return []
    tiles = upscale_nearest(diverging_rgb(pics, np.abs(pics).max(axis=(1, 2), keepdims=True)), TILE_PX)
    figs = [Figure("weights_linear", captioned_grid(tiles, inputs.classes, _cols(len(tiles)), caption_lines=1),
                   "Each class's weights as a picture: red pixels vote for the class when bright, blue ones "
                   "against it (each picture scaled to its own largest weight).")]
    colour = linear_colour_pictures(inputs.model)
    if colour is not None:
        figs.append(Figure("weights_linear_colour", captioned_grid(upscale_nearest(colour, TILE_PX), inputs.classes,
                                                                   _cols(len(colour)), caption_lines=1),
                           "The same weights per colour channel (grey = 0; a red pixel votes for red there)."))
    return figs


def _filter_figures(inputs: ReportInputs, prep: Preprocessing) -> list[Figure]:
    found = first_layer_filters(inputs.model, prep.channels)
    if found is None:
        units = first_dense_units(inputs.model, prep.channels, prep.img_size)
        if units is None:
            return []
        tiles = upscale_nearest(diverging_rgb(units, np.abs(units).max(axis=(1, 2), keepdims=True)), TILE_PX)
        return [Figure("first_layer_units", captioned_grid(tiles, None, _cols(len(tiles))),
                       f"First-layer weights of the first {len(tiles)} hidden units (red +, blue -).")]
    name, w = found
    tiles = upscale_nearest(filter_tiles(w[:MAX_FILTERS]), 56)
    whitening = name.endswith("whiten")
    caption = (f"The {len(w)} frozen {w.shape[-1]}x{w.shape[-2]} whitening filters ({name}): eigenvectors of the "
               "training images' patch covariance, strongest first, each followed later by its negative."
               if whitening else f"First-layer filters ({name}, {len(w)} of {w.shape[-1]}x{w.shape[-2]}"
               f"{', first ' + str(MAX_FILTERS) + ' shown' if len(w) > MAX_FILTERS else ''}).")
    caption += " Colour filters as colours (grey = 0); single-channel ones red +, blue -."
    return [Figure("first_layer_filters", captioned_grid(tiles, None, min(16, len(tiles))), caption)]


def _dream_figure(inputs: ReportInputs, prep: Preprocessing, steps: int, seconds: float, seed: int,
                  progress: bool) -> Figure:
    dream = class_dreams(inputs.model, prep.mean, prep.std, steps=steps, seconds=seconds, seed=seed,
                         img_size=prep.img_size, channels=prep.channels, progress=progress)
    captions = [f"{c}\np={p:.2f}" for c, p in zip(inputs.classes, dream.probabilities)]
    png = captioned_grid(thumbnails(dream.images), captions, _cols(len(captions)))
    return Figure("dreams", png, f"Class dreams: for each class, an image optimized to maximize the class's score "
                                 f"({dream.steps_done} steps, {dream.seconds:.1f} s; jitter, blur and a pixel "
                                 f"prior; seed {seed}); p is the model's probability for the class.")


def learned_section(inputs: ReportInputs, *, dream_steps: int, dream_seconds: float, seed: int,
                    progress: bool) -> Section:
    s = Section("learned", "6. What the model learned")
    prep = inputs.meta.preprocessing
    s.figures += _linear_figures(inputs) + _filter_figures(inputs, prep)
    if dream_steps > 0 and dream_seconds > 0:
        s.figures.append(_dream_figure(inputs, prep, dream_steps, dream_seconds, seed, progress))
    if not s.figures:
        s.paragraphs.append("Nothing to draw (dreams turned off and no weight pictures for this model).")
    return s
