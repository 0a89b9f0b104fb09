"""A direct pixel check of each subject's feature, with no learning: is the thing a person sees there?

The evaluator's subject head is a small CNN; it can learn to call a distortion "the subject".
This module decides the same question by hand, from colours and shapes, so the two can be
compared (:func:`helpers.toyworld.metrics.agreement`): how often does the metric say "subject" when the pixels show
the feature, and how often does it say so when they do not?

Each check first finds the object by the subject's own colour (with a tolerance wide enough
for an autoencoder's blur and colour shift, narrow enough to leave the backgrounds out), then
looks for the feature inside it:

==============  =============================================================================
subject         evidence
==============  =============================================================================
dotted_star     small, round light blobs (the dots) ringed by red, on the largest red object
checked_cube    yellow and blue both cover a fair share of the blue/yellow object
striped_ball    white bands cover a fair share of the green ball's hull
patch_face      a dark blob thicker than a pupil inside the face (its brown skin and the orange hair
                that frames it), the other eye thin
==============  =============================================================================

The thresholds are named constants, chosen by looking at renders of the subjects, of the same
objects without their feature (``world.make_scene`` with ``pattern="none"``), of random
pretraining scenes, and at their reconstructions by both ToyWorld autoencoders; the face's hair
rule was added when generations showed skin tinted towards the background, which a skin colour
alone missed. Known limits: a face wearing glasses over its patch looks like two dark eyes and
is rejected; skin nearly as dark as the patch hides it; a blur that melts the dots into one pink
spot is rejected, as a person would see no dots either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from helpers.toyworld import world

# ---- colour masks (on int arrays, 0-255) ------------------------------------------------------

RED_MIN_R = 100  # the star's red, as drawn or blurred by a redraw: red channel at least this ...
RED_RATIO = 1.8  # ... and at least 1.8 times green and blue (pink blur yes; brown skin 1.5, orange 1.75 no)
LIGHT_MIN = 150  # a dot: every channel at least this (the star's green and blue are about 40)
BLUE_MIN_B = 140  # blue cube: strongly blue ...
BLUE_MIN_B_MINUS_R = 110  # ... and far bluer than the sky's top and the water
BLUE_MIN_B_MINUS_G = 95
YELLOW_MIN_RG = 150  # checks: red and green both high ...
YELLOW_MAX_B = 110  # ... and blue low (sand has blue about 140)
GREEN_MIN_G = 110  # green ball: bright green ...
GREEN_MAX_R_RATIO = 0.36  # ... with little red (grass: red about half of green)
WHITE_MIN = 215  # a white band: every channel high (the plain background stays below) ...
WHITE_MAX_SPREAD = 45  # ... and nearly grey
SKIN_MIN_R, SKIN_MAX_R = 110, 215  # the face subject's brown skin (160, 105, 65): its red channel ...
SKIN_G_RATIO = (0.55, 0.8)  # ... green as a share of red (brick: about 0.42, orange hair 0.57 ...)
SKIN_B_RATIO = (0.28, 0.58)  # ... and blue as a share of red (... but orange hair's blue is 0.12)
DARK_MAX = 75  # the eyepatch: every channel below this
HAIR_MIN_R = 170  # the face subject's orange hair (245, 140, 30): a strong red channel ...
HAIR_G_RATIO = (0.42, 0.72)  # ... green as a share of red (brick about 0.42, the red star lower, yellow higher) ...
HAIR_MAX_B_RATIO = 0.3  # ... and little blue (sand and skin have more)

# ---- evidence thresholds ---------------------------------------------------------------------

MIN_OBJECT_PIXELS = 80  # an object smaller than this (of 4,096) is not looked at
STAR_CLOSE = 1  # px of closing that joins the red between the dots into one star
MIN_DOT_RING_RED = 0.6  # share of the 2 px ring around a dot that is red: a dot lies on the star, not beside it
DOT_MIN_PEAK = 170  # a dot's lightest pixel has green and blue this high (a red ball's highlight: below 165)
MIN_DOT_PIXELS = 3  # a dot covers at least this many pixels ...
MAX_DOT_PIXELS = 45  # ... and at most this many (a dot has radius about 2 px at 64 px) ...
MAX_DOT_ASPECT = 2.5  # ... and is round: its box at most this long for its width (bits of mortar are lines)
MIN_DOTS = 3  # the star shows at least this many dots (a render shows 6-12)
MIN_CHECK_SHARE, MAX_CHECK_SHARE = 0.15, 0.75  # yellow's share of the cube's blue + yellow pixels
BALL_MIN_PART = 20  # px: green parts smaller than this (grass that looks green) stay out of the ball
MIN_BALL_FILL = 0.5  # green and white together cover this share of the ball's hull (not scattered grass)
MIN_STRIPE_SHARE, MAX_STRIPE_SHARE = 0.15, 0.75  # white's share of the ball's green + white pixels
MIN_PATCH_RADIUS = 3.3  # px: the thickest dark blob's inscribed radius (pupils up to 2.9 on renders and
# redraws; the patch 5-6.5 on renders, down to about 3.6 in a blurred redraw)
MAX_OTHER_EYE = 0.7  # the other eye's dark blob is at most this share of the patch's radius (glasses: both
# eyes look alike, about 1; patch: a pupil, about 0.5)


@dataclass(frozen=True)
class FeatureCheck:
    """The verdict of a pixel check on one image and the evidence it rests on."""

    subject: str
    visible: bool
    evidence: dict = field(default_factory=dict)

    def __str__(self) -> str:
        facts = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in self.evidence.items())
        return f"{self.subject}: {'feature visible' if self.visible else 'no feature'} ({facts})"


def to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """A PIL image or an ``(h, w, 3)`` array as an int ``(64, 64, 3)`` array in 0..255."""
    if not isinstance(image, Image.Image):
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"Expected an RGB image (h, w, 3); got an array of shape {arr.shape}.")
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255 if arr.max() <= 1.0 else 1), 0, 255).round().astype(np.uint8)
        image = Image.fromarray(arr)
    image = image.convert("RGB")
    if image.size != (world.IMAGE_SIZE, world.IMAGE_SIZE):
        image = image.resize((world.IMAGE_SIZE, world.IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(image).astype(np.int32)


def _channels(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return img[..., 0], img[..., 1], img[..., 2]


def red_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the dotted star's red."""
    r, g, b = _channels(img)
    return (r >= RED_MIN_R) & (r >= RED_RATIO * g) & (r >= RED_RATIO * b)


def blue_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the checked cube's blue."""
    r, g, b = _channels(img)
    return (b >= BLUE_MIN_B) & (b - r >= BLUE_MIN_B_MINUS_R) & (b - g >= BLUE_MIN_B_MINUS_G)


def yellow_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the checked cube's yellow."""
    r, g, b = _channels(img)
    return (r >= YELLOW_MIN_RG) & (g >= YELLOW_MIN_RG) & (b <= YELLOW_MAX_B)


def green_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the striped ball's green."""
    r, g, _ = _channels(img)
    return (g >= GREEN_MIN_G) & (r <= GREEN_MAX_R_RATIO * g)


def white_mask(img: np.ndarray) -> np.ndarray:
    """Near-white pixels (the stripes)."""
    return (img.min(axis=2) >= WHITE_MIN) & (img.max(axis=2) - img.min(axis=2) <= WHITE_MAX_SPREAD)


def skin_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the face subject's brown skin (its party hat too)."""
    r, g, b = _channels(img)
    rf = np.maximum(r, 1)
    return (
        (r >= SKIN_MIN_R) & (r <= SKIN_MAX_R)
        & (g >= SKIN_G_RATIO[0] * rf) & (g <= SKIN_G_RATIO[1] * rf)
        & (b >= SKIN_B_RATIO[0] * rf) & (b <= SKIN_B_RATIO[1] * rf)
    )


def hair_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the face subject's orange hair, which frames its face on three sides."""
    r, g, b = _channels(img)
    rf = np.maximum(r, 1)
    return (r >= HAIR_MIN_R) & (g >= HAIR_G_RATIO[0] * rf) & (g <= HAIR_G_RATIO[1] * rf) & (b <= HAIR_MAX_B_RATIO * rf)


def dark_mask(img: np.ndarray) -> np.ndarray:
    """Near-black pixels (the eyepatch, pupils, outlines)."""
    return img.max(axis=2) <= DARK_MAX


# ---- regions ---------------------------------------------------------------------------------


def largest_region(mask: np.ndarray, close: int = 1) -> np.ndarray:
    """The largest connected part of ``mask`` after closing small gaps and filling its holes."""
    if close:
        mask = ndimage.binary_closing(mask, iterations=close)
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = ndimage.sum_labels(mask, labels, range(1, n + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def hull_region(mask: np.ndarray, min_part: int = 8) -> np.ndarray:
    """The convex hull of the parts of ``mask`` with at least ``min_part`` pixels (empty if too few)."""
    labels, n = ndimage.label(mask)
    sizes = ndimage.sum_labels(mask, labels, range(1, n + 1)) if n else np.array([])
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= min_part))
    points = np.argwhere(keep)
    if len(points) < 3:
        return np.zeros_like(mask, dtype=bool)
    try:
        hull = ConvexHull(points)
    except QhullError:  # all points on a line
        return keep
    grid = np.argwhere(np.ones_like(mask, dtype=bool))
    inside = (grid @ hull.equations[:, :2].T + hull.equations[:, 2] <= 0.5).all(axis=1)
    return inside.reshape(mask.shape)


# ---- the four checks -------------------------------------------------------------------------


def _is_dot(blob: np.ndarray, img: np.ndarray, red: np.ndarray, star: np.ndarray) -> bool:
    """Whether a light blob is one of the star's dots: small, round, bright at its core, on the star."""
    rows, cols = np.nonzero(blob)
    h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
    if not MIN_DOT_PIXELS <= len(rows) <= MAX_DOT_PIXELS or max(h, w) > MAX_DOT_ASPECT * min(h, w):
        return False
    if img[..., 1:][blob].min(axis=1).max() < DOT_MIN_PEAK or star[blob].mean() < 0.5:
        return False
    ring = ndimage.binary_dilation(blob, iterations=2) & ~blob
    return red[ring].mean() >= MIN_DOT_RING_RED


def check_dotted_star(img: np.ndarray) -> FeatureCheck:
    """Light dots on the red star: counts the dot-like light blobs on the largest red object.

    Light blobs are found in the whole image, so a background's light lines (mortar, wave crests)
    stay long connected shapes and are not mistaken for dots where the star's outline cuts them.
    """
    red = red_mask(img)
    star = hull_region(largest_region(red, close=STAR_CLOSE))
    labels, n = ndimage.label((img >= LIGHT_MIN).all(axis=2))
    dots = sum(_is_dot(labels == k, img, red, star) for k in range(1, n + 1))
    size = int(star.sum())
    visible = size >= MIN_OBJECT_PIXELS and dots >= MIN_DOTS
    return FeatureCheck("dotted_star", visible, {"object_pixels": size, "dots": int(dots)})


def check_checked_cube(img: np.ndarray) -> FeatureCheck:
    """A blue and yellow object where yellow covers a fair share: the checkerboard."""
    blue, yellow = blue_mask(img), yellow_mask(img)
    cube = largest_region(blue | yellow, close=1)
    n_blue, n_yellow = int((cube & blue).sum()), int((cube & yellow).sum())
    size = int(cube.sum())
    share_yellow = n_yellow / max(1, n_blue + n_yellow)
    visible = (
        size >= MIN_OBJECT_PIXELS and n_blue >= MIN_OBJECT_PIXELS / 4 and MIN_CHECK_SHARE <= share_yellow <= MAX_CHECK_SHARE
    )
    return FeatureCheck("checked_cube", visible, {"object_pixels": size, "yellow_share": round(share_yellow, 3)})


def check_striped_ball(img: np.ndarray) -> FeatureCheck:
    """White bands over a green ball: white's share of the green and white pixels in the ball's hull."""
    green = green_mask(img)
    ball = hull_region(green, min_part=BALL_MIN_PART)
    white = ball & white_mask(img)
    n_green, n_white = int((ball & green).sum()), int(white.sum())
    share_white = n_white / max(1, n_green + n_white)
    bands = ndimage.label(white)[1]
    fill = (n_green + n_white) / max(1, int(ball.sum()))
    visible = (
        n_green >= MIN_OBJECT_PIXELS and fill >= MIN_BALL_FILL and MIN_STRIPE_SHARE <= share_white <= MAX_STRIPE_SHARE and bands >= 1
    )
    return FeatureCheck(
        "striped_ball", visible, {"object_pixels": int(ball.sum()), "fill": round(fill, 3), "white_share": round(share_white, 3), "bands": bands}
    )


def check_patch_face(img: np.ndarray) -> FeatureCheck:
    """One dark blob thicker than a pupil inside the face, the other eye thin: the eyepatch.

    The face is the hull of its skin and hair together: a generation often shifts the skin's
    colour towards the background (olive on grass, darker on water) while the hair stays orange,
    so the hair alone still frames where the face is.
    """
    face = hull_region(largest_region(skin_mask(img) | hair_mask(img), close=0))  # the patch meets the hair: a hull
    thickness = ndimage.distance_transform_edt(face & dark_mask(img))
    radius = float(thickness.max())
    other = 0.0
    if radius > 0:  # the thickest dark spot elsewhere, away from the first (the other eye)
        y, x = np.unravel_index(int(np.argmax(thickness)), thickness.shape)
        yy, xx = np.mgrid[0 : face.shape[0], 0 : face.shape[1]]
        away = (yy - y) ** 2 + (xx - x) ** 2 > (1.5 * radius) ** 2
        other = float(thickness[away].max()) if away.any() else 0.0
    size = int(face.sum())
    visible = size >= MIN_OBJECT_PIXELS and radius >= MIN_PATCH_RADIUS and other <= MAX_OTHER_EYE * radius
    return FeatureCheck(
        "patch_face", visible, {"object_pixels": size, "patch_radius": round(radius, 2), "other_eye": round(other, 2)}
    )


CHECKS = {
    "dotted_star": check_dotted_star,
    "checked_cube": check_checked_cube,
    "striped_ball": check_striped_ball,
    "patch_face": check_patch_face,
}


def check(image: Image.Image | np.ndarray, subject: str) -> FeatureCheck:
    """Whether ``subject``'s feature is visible in one image, and the evidence.

    Args:
        image: a PIL image or an RGB array (any size; resized to 64 px).
        subject: a key of ``subjects.SUBJECTS``.
    """
    if subject not in CHECKS:
        raise KeyError(f"No pixel check for subject {subject!r}; choose one of {sorted(CHECKS)}.")
    return CHECKS[subject](to_array(image))
