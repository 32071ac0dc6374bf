"""Whether an input image is inverted (255 - x) before the model sees it: `--invert auto|always|never`.

Inversion exists for one case: dark ink on white paper (a photo or scan of handwriting) fed to an MNIST-like
model, trained on light strokes on a black background. `auto` inverts only when BOTH sides say so:
- the model (`auto_inverts(prep)`, from its stored preprocessing): single-channel, small images
  (<= INK_MAX_PX), trained on images with a dark background, whole-image resize (no ImageNet centre crop).
  Colour models, photo models and models trained on light backgrounds are never inverted automatically.
- the image (`looks_like_ink_on_paper`): its 1-px border is light (the same ring that recorded the training
  background, see preprocess.border_ring) and it is nearly grey once a uniform colour cast is removed (paper
  under warm light is grey; a colour photo is not), so a colour photo is never touched.
`model_input(img, prep, invert)` is the one place this is decided and applied: predict, serve, the camera and
evaluate all call it (evaluate through the folder decoders), so they agree on every file.

Usage:
    arr, inverted = model_input(pil_image, prep, "auto")   # uint8 [C, H, W] as the model takes it
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from sortnet.data.preprocess import Preprocessing, border_ring, image_to_array

INVERT_CHOICES = ("auto", "always", "never")
# = models.family.SMALL_IMAGE_PX (not imported: this runs in the decode worker processes, which stay torch-free)
INK_MAX_PX = 64
# mean per-pixel colour spread (max - min channel, 0..255) after a grey-world balance: scans and photos of ink on
# paper (also under warm or uneven light) measured 0-8; colour photos: skimage's coffee 52, astronaut 52,
# chelsea 26, the hymenoptera photos' median 35 (low-saturation ones lie below: grey-ish photos of a dark object
# on a light background look like ink on paper to an MNIST-like model, and are inverted for it)
INK_MAX_COLOUR = 24.0
COLOUR_SAMPLE_PX = 64  # the colour test looks at the image shrunk to at most this side (cost: microseconds)


def auto_inverts(prep: Preprocessing) -> bool:
    """True when `--invert auto` may invert inputs of this model at all (an MNIST-like model)."""
    return (prep.channels == 1 and prep.img_size <= INK_MAX_PX and prep.background == "dark"
            and prep.crop == 1.0)


def colour_spread(img: Image.Image) -> float:
    """Mean max-minus-min channel value (0..255) of an RGB or L image after a grey-world white balance."""
    if img.mode != "RGB":
        return 0.0
    small = img.copy()
    small.thumbnail((COLOUR_SAMPLE_PX, COLOUR_SAMPLE_PX))
    x = np.asarray(small, dtype=np.float32).reshape(-1, 3)
    means = np.maximum(x.mean(axis=0), 16.0)  # floor: a near-black channel is not blown up into colour
    balanced = np.minimum(x * (means.mean() / means), 255.0)  # a uniform cast (warm light on paper) becomes grey
    return float((balanced.max(axis=1) - balanced.min(axis=1)).mean())


def border_is_light(arr: np.ndarray) -> bool:
    """Median of the outer 1-px ring of a uint8 [C, H, W] image is >= 128 (same ring as training's background)."""
    return float(np.median(border_ring(arr[None]))) >= 128


def looks_like_ink_on_paper(img: Image.Image, arr: np.ndarray) -> bool:
    """The decoded image `img` and its model input `arr` look like dark strokes on light, nearly grey paper."""
    return border_is_light(arr) and colour_spread(img) <= INK_MAX_COLOUR


def model_input(img: Image.Image, prep: Preprocessing, invert: str = "never") -> tuple[np.ndarray, bool]:
    """(uint8 [C, H, W] exactly as in training, inverted or not; whether it was inverted)."""
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {INVERT_CHOICES}, got {invert!r}")
    arr = image_to_array(img, prep)
    flip = invert == "always" or (invert == "auto" and auto_inverts(prep) and looks_like_ink_on_paper(img, arr))
    return (255 - arr if flip else arr), flip
