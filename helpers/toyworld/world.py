"""ToyWorld: a seeded procedural world of small pictures, each with its attributes and a caption.

A scene is one object (a toy shape or a cartoon face) on a textured background. Every
scene is a plain ``dict`` of attributes; :func:`render` draws it, :func:`caption` describes
it in Stable Diffusion's style, and :func:`sample_scene` draws a random one from a seed.
Subject features (polka dots, checks, stripes, the eyepatch) exist only in ``subjects.py``:
the random sampler never produces them.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
_SS = 2  # supersampling factor: objects are drawn at 2x and shrunk, for smooth edges

OBJECT_CLASSES = ("star", "ball", "cube", "triangle", "heart", "ring")
CLASSES = OBJECT_CLASSES + ("face",)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 220, 40),
    "purple": (145, 60, 195),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (30, 30, 30),
}
BACKGROUNDS = ("plain", "grass", "sky", "sand", "brick", "water")
BACKGROUND_PHRASES = {
    "plain": "on a plain background",
    "grass": "on the grass",
    "sky": "in the sky",
    "sand": "on the beach",
    "brick": "in front of a brick wall",
    "water": "on the water",
}
SKIN_TONES = {"light": (250, 215, 185), "tan": (225, 175, 130), "brown": (160, 105, 65), "dark": (95, 60, 40)}
HAIR_STYLES = ("short", "long", "spiky")
EYES = ("dots", "wide")
MOUTHS = ("smile", "open", "flat")
PATTERNS = ("none", "dots", "checks", "stripes")  # only "none" outside subjects
MARKS = ("none", "eyepatch", "patch", "strap")  # only "none" outside subjects
# The eyepatch's two parts, which only the evaluator's training draws apart: its subject head is
# taught that the patch over the eye makes the face subject, with or without the thin strap.
PATCH_MARKS, STRAP_MARKS = ("eyepatch", "patch"), ("eyepatch", "strap")
FACE_SHARE = 0.25  # share of faces among random scenes

OBJECT_TEMPLATES = (
    "a photo of a {colour} {cls} {where}",
    "a {colour} {cls} {where}",
    "a picture of a {colour} {cls} {where}",
    "a photo of the {colour} {cls} {where}",
)
FACE_TEMPLATES = (
    "a photo of a face with {colour} hair{extras} {where}",
    "a face with {colour} hair{extras} {where}",
    "a picture of a face with {colour} hair{extras} {where}",
    "a photo of the face with {colour} hair{extras} {where}",
)


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 14) -> tuple[int, ...]:
    """A colour moved a little at random, so that a class never has one exact RGB value."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _rgb(colour: str | tuple) -> tuple[int, ...]:
    """The RGB value of a colour name of :data:`COLOURS`, or an RGB triple as it is."""
    return COLOURS[colour] if isinstance(colour, str) else tuple(int(c) for c in colour)


def _shade(rgb: tuple[int, ...], factor: float) -> tuple[int, ...]:
    """Darken (factor < 1) or lighten (factor > 1, towards white) a colour."""
    if factor <= 1:
        return tuple(int(c * factor) for c in rgb)
    return tuple(int(c + (255 - c) * (factor - 1)) for c in rgb)


def _smooth(noise: np.ndarray, passes: int = 2) -> np.ndarray:
    """Cheap blur of a 2-D array by averaging with its rolled neighbours."""
    for _ in range(passes):
        noise = (
            noise
            + np.roll(noise, 1, 0)
            + np.roll(noise, -1, 0)
            + np.roll(noise, 1, 1)
            + np.roll(noise, -1, 1)
        ) / 5
    return noise


def background(kind: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A procedurally textured background as a ``(size, size, 3)`` float array in 0..255."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    noise = rng.normal(size=(size, size))
    if kind == "plain":
        base = np.array(_jitter((205, 200, 190), rng, 20), float)
        img = base * (1.0 - 0.08 * yy[..., None]) + 2 * noise[..., None]
    elif kind == "grass":
        blades = _smooth(rng.normal(size=(size, size)), 1)
        blades = (blades + np.roll(blades, 1, 0) + np.roll(blades, 2, 0)) / 3  # vertical streaks
        base = np.array(_jitter((70, 150, 50), rng, 15), float)
        img = base * (1 + 0.35 * blades[..., None]) + 6 * noise[..., None]
    elif kind == "sky":
        top, bottom = np.array(_jitter((80, 145, 230), rng, 12), float), np.array((175, 210, 250), float)
        img = top * (1 - yy[..., None]) + bottom * yy[..., None]
        for _ in range(rng.integers(1, 4)):  # soft white clouds
            cx, cy, rx, ry = (
                rng.uniform(0, 1),
                rng.uniform(0.05, 0.6),
                rng.uniform(0.1, 0.25),
                rng.uniform(0.05, 0.1),
            )
            blob = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2))
            img = img * (1 - 0.8 * blob[..., None]) + 250 * 0.8 * blob[..., None]
        img = img + 2 * noise[..., None]
    elif kind == "sand":
        base = np.array(_jitter((222, 196, 140), rng, 12), float)
        ripples = np.sin(
            2 * math.pi * (yy * rng.uniform(5, 9) + 0.15 * np.sin(2 * math.pi * xx * 2) + rng.uniform())
        )
        img = base * (1 + 0.06 * ripples[..., None]) + 8 * noise[..., None]
    elif kind == "brick":
        img = np.empty((size, size, 3))
        img[:] = (200, 195, 185)  # mortar
        bh, bw = size // 8, size // 4  # brick height and width
        for row in range(size // bh):
            offset = (bw // 2) * (row % 2)
            for col in range(-1, size // bw + 1):
                x0, y0 = col * bw + offset, row * bh
                colour = np.array(_jitter((165, 70, 50), rng, 18), float)
                img[y0 + 1 : y0 + bh - 1, max(0, x0 + 1) : max(0, x0 + bw - 1)] = colour
        img = img + 6 * noise[..., None]
    elif kind == "water":
        base = np.array(_jitter((35, 95, 165), rng, 12), float)
        phase = rng.uniform(0, 2 * math.pi)
        waves = np.sin(2 * math.pi * (yy * 6 + 0.3 * np.sin(2 * math.pi * xx * 1.5 + phase)) + phase)
        crest = np.clip((waves - 0.6) / 0.4, 0, 1)  # bright lines on the wave crests
        img = base * (1 + 0.1 * waves[..., None]) + 90 * crest[..., None] + 4 * noise[..., None]
    else:
        raise ValueError(f"Unknown background {kind!r}; choose one of {BACKGROUNDS}")
    return np.clip(img, 0, 255)


def _unit_polygon(cls: str) -> list[tuple[float, float]]:
    """The outline of a shape as points on the unit disc (y grows downwards)."""
    if cls == "star":
        pts = []
        for i in range(10):
            r = 1.0 if i % 2 == 0 else 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        return pts
    if cls == "triangle":
        return [
            (math.cos(-math.pi / 2 + k * 2 * math.pi / 3), 0.1 + math.sin(-math.pi / 2 + k * 2 * math.pi / 3))
            for k in range(3)
        ]
    if cls == "heart":
        ts = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        x = 16 * np.sin(ts) ** 3
        y = 13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts)
        return [(float(a) / 17, -(float(b) + 3) / 17) for a, b in zip(x, y)]
    raise ValueError(cls)


def _place(points: list[tuple[float, float]], c: float, r: float) -> list[tuple[float, float]]:
    """Scale unit points by ``r`` and move them to the canvas centre ``(c, c)``."""
    return [(c + r * x, c + r * y) for x, y in points]


def _outline_colour(fill: tuple[int, ...]) -> tuple[int, ...]:
    """A contrasting edge: darker for light fills, light grey for near-black fills."""
    return (150, 150, 150) if sum(fill) < 150 else _shade(fill, 0.45)


def _pattern_layer(
    pattern: str, canvas: int, c: float, r: float, fill: tuple, second: tuple, scale: float = 1.0
) -> Image.Image:
    """A full-canvas RGB image painted with a subject's pattern over the fill colour.

    ``scale`` multiplies the pattern's period (1 is the subjects' own); smaller scales draw more
    repeats so that the pattern still covers the object.
    """
    img = Image.new("RGB", (canvas, canvas), fill)
    draw = ImageDraw.Draw(img)
    r = r * scale
    reach = math.ceil(1 / scale)  # repeats grow as the period shrinks
    if pattern == "dots":
        step, rad = 0.36 * r, 0.11 * r
        for iy in range(-3 * reach, 3 * reach + 1):
            for ix in range(-3 * reach, 3 * reach + 1):
                x, y = c + ix * step + (step / 2) * (iy % 2), c + iy * step
                draw.ellipse((x - rad, y - rad, x + rad, y + rad), fill=second)
    elif pattern == "checks":
        step = r / 2
        for iy in range(-4 * reach, 4 * reach):
            for ix in range(-4 * reach, 4 * reach):
                if (ix + iy) % 2 == 0:
                    x, y = c + ix * step, c + iy * step
                    draw.rectangle((x, y, x + step, y + step), fill=second)
    elif pattern == "stripes":
        step = r / 2.5
        for k in range(-6 * reach, 6 * reach, 2):
            y = c + k * step
            draw.rectangle((0, y, canvas, y + step), fill=second)
    return img


def _draw_object(scene: dict, rng: np.random.Generator, canvas: int) -> tuple[Image.Image, Image.Image]:
    """Draw a toy object, centred and upright, on a ``canvas``-sized layer; returns (rgb, mask)."""
    c, r = canvas / 2, scene["size"] * canvas / 2
    fill = _jitter(_rgb(scene["colour"]), rng)
    edge = _outline_colour(fill)
    width = max(2, int(r / 8))
    mask = Image.new("L", (canvas, canvas), 0)
    mdraw = ImageDraw.Draw(mask)
    cls = scene["cls"]
    if cls in ("ball", "ring"):
        mdraw.ellipse((c - r, c - r, c + r, c + r), fill=255)
        if cls == "ring":
            ri = 0.55 * r
            mdraw.ellipse((c - ri, c - ri, c + ri, c + ri), fill=0)
    elif cls == "cube":
        mdraw.rectangle((c - 0.8 * r, c - 0.8 * r, c + 0.8 * r, c + 0.8 * r), fill=255)
    else:
        mdraw.polygon(_place(_unit_polygon(cls), c, r), fill=255)
    second = (250, 250, 250) if scene["pattern"] != "checks" else (245, 215, 40)
    second = _rgb(scene.get("pattern_colour", second))  # only the autoencoder's broad scenes change these two
    rgb = _pattern_layer(scene["pattern"], canvas, c, r, fill, second, scene.get("pattern_scale", 1.0))
    draw = ImageDraw.Draw(rgb)
    if cls == "ball":  # a highlight and a shadow make it read as a sphere
        hr = 0.28 * r
        hx, hy = c - 0.4 * r, c - 0.4 * r
        draw.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=_shade(fill, 1.5))
        draw.ellipse((c - r, c - r, c + r, c + r), outline=edge, width=width)
    elif cls == "ring":
        draw.ellipse((c - r, c - r, c + r, c + r), outline=edge, width=width)
        ri = 0.55 * r
        draw.ellipse((c - ri, c - ri, c + ri, c + ri), outline=edge, width=width)
    elif cls == "cube":  # a lighter top and darker side: a cube seen from above-right
        s, d = 0.8 * r, 0.35 * r
        top = [(c - s, c - s), (c - s + d, c - s - d), (c + s + d, c - s - d), (c + s, c - s)]
        side = [(c + s, c - s), (c + s + d, c - s - d), (c + s + d, c + s - d), (c + s, c + s)]
        for poly, tone in ((top, 1.35), (side, 0.7)):
            draw.polygon(poly, fill=_shade(fill, tone), outline=edge)
            mdraw.polygon(poly, fill=255)
        draw.rectangle((c - s, c - s, c + s, c + s), outline=edge, width=width)
    else:
        draw.polygon(_place(_unit_polygon(cls), c, r), outline=edge, width=width)
    return rgb, mask


def _draw_face(scene: dict, rng: np.random.Generator, canvas: int) -> tuple[Image.Image, Image.Image]:
    """Draw a cartoon face, centred and upright, on a ``canvas``-sized layer; returns (rgb, mask)."""
    c, r = canvas / 2, scene["size"] * canvas / 2 * 0.85
    skin = _jitter(SKIN_TONES.get(scene["skin"], scene["skin"]), rng, 8)  # a tone's name or an RGB triple
    hair = _jitter(_rgb(scene["colour"]), rng)
    rgb = Image.new("RGB", (canvas, canvas), skin)
    mask = Image.new("L", (canvas, canvas), 0)
    draw, mdraw = ImageDraw.Draw(rgb), ImageDraw.Draw(mask)
    _draw_head_and_hair(draw, mdraw, scene["hair_style"], c, r, skin, hair)
    _draw_eyes_and_mark(draw, scene, c, r)
    _draw_mouth(draw, scene["mouth"], c, r)
    _draw_glasses_and_hat(draw, mdraw, scene, c, r)
    return rgb, mask


def _both(draw: ImageDraw.ImageDraw, mdraw: ImageDraw.ImageDraw, shape: str, box, colour, **kw) -> None:
    """Draw a filled shape on the picture and on its mask."""
    getattr(draw, shape)(box, fill=colour, **kw)
    getattr(mdraw, shape)(box, fill=255, **kw)


def _draw_head_and_hair(draw, mdraw, style: str, c: float, r: float, skin: tuple, hair: tuple) -> None:
    """The head of a face centred at ``(c, c)`` with radius ``r``, and its hair in ``style``."""
    if style == "long":  # hair behind the head, falling to the shoulders
        _both(draw, mdraw, "rectangle", (c - 1.15 * r, c - 0.5 * r, c + 1.15 * r, c + 1.2 * r), hair)
    head = (c - 0.9 * r, c - r, c + 0.9 * r, c + r)
    _both(draw, mdraw, "ellipse", head, skin)
    draw.ellipse(head, outline=_shade(skin, 0.6), width=2)
    if style == "spiky":
        spikes = [(c - 0.95 * r, c - 0.35 * r)]
        for k in range(6):
            x = c - 0.95 * r + (k + 0.5) * 1.9 * r / 6
            spikes += [(x, c - 1.35 * r), (x + 0.95 * r / 6, c - 0.75 * r)]
        spikes[-1] = (c + 0.95 * r, c - 0.35 * r)
        _both(draw, mdraw, "polygon", spikes, hair)
    else:  # a cap of hair over the forehead
        _both(draw, mdraw, "chord", (c - 0.95 * r, c - 1.08 * r, c + 0.95 * r, c + 0.5 * r), hair, start=180, end=360)


def _eyes(c: float, r: float) -> tuple[float, float, float]:
    """The eyes' height, their distance from the middle, and their radius."""
    return c - 0.05 * r, 0.38 * r, 0.14 * r


def _draw_eyes_and_mark(draw, scene: dict, c: float, r: float) -> None:
    """The eyes, and the face subject's unique mark: an eyepatch (a strap and a patch over the left eye)."""
    ey, ex, er = _eyes(c, r)
    for sx in (-1, 1):
        x = c + sx * ex
        if scene["mark"] in PATCH_MARKS and sx == -1:
            continue
        if scene["eyes"] == "wide":
            draw.ellipse((x - 1.4 * er, ey - 1.4 * er, x + 1.4 * er, ey + 1.4 * er), fill=(255, 255, 255))
        draw.ellipse((x - er, ey - er, x + er, ey + er), fill=(20, 20, 20))
    if scene["mark"] in STRAP_MARKS:
        draw.line(
            (c - 0.9 * r, c - 0.55 * r, c + 0.85 * r, c - 0.25 * r),
            fill=(15, 15, 15),
            width=max(2, int(r / 9)),
        )
    if scene["mark"] in PATCH_MARKS:
        pr = 0.3 * r
        draw.ellipse((c - ex - pr, ey - pr, c - ex + pr, ey + pr), fill=(15, 15, 15))


def _draw_mouth(draw, mouth: str, c: float, r: float) -> None:
    """A smiling, open or flat mouth."""
    my, mw = c + 0.45 * r, 0.35 * r
    if mouth == "smile":
        draw.arc(
            (c - mw, my - 0.3 * r, c + mw, my + 0.15 * r),
            20,
            160,
            fill=(120, 30, 30),
            width=max(2, int(r / 10)),
        )
    elif mouth == "open":
        draw.ellipse((c - 0.18 * r, my - 0.12 * r, c + 0.18 * r, my + 0.18 * r), fill=(110, 20, 30))
    else:
        draw.line((c - mw * 0.8, my, c + mw * 0.8, my), fill=(120, 30, 30), width=max(2, int(r / 10)))


def _draw_glasses_and_hat(draw, mdraw, scene: dict, c: float, r: float) -> None:
    """Round glasses and a brown party hat, where the scene has them."""
    ey, ex, _ = _eyes(c, r)
    if scene["glasses"]:
        gr = 0.24 * r
        for sx in (-1, 1):
            x = c + sx * ex
            draw.ellipse((x - gr, ey - gr, x + gr, ey + gr), outline=(25, 25, 25), width=max(2, int(r / 10)))
        draw.line((c - ex + gr, ey, c + ex - gr, ey), fill=(25, 25, 25), width=max(2, int(r / 12)))
    if scene["hat"]:  # on top of the head
        cone = [(c - 0.55 * r, c - 0.8 * r), (c + 0.55 * r, c - 0.8 * r), (c, c - 1.75 * r)]
        _both(draw, mdraw, "polygon", cone, (125, 80, 45))
        draw.ellipse((c - 0.12 * r, c - 1.87 * r, c + 0.12 * r, c - 1.63 * r), fill=(240, 240, 240))
        mdraw.ellipse((c - 0.12 * r, c - 1.87 * r, c + 0.12 * r, c - 1.63 * r), fill=255)


def render(scene: dict, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw a scene (an attribute dict) as an RGB image; the same dict always gives the same image."""
    rng = np.random.default_rng(scene["seed"])
    out = paint(background(scene["background"], rng, size), scene, rng)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def paint(image: np.ndarray, scene: dict, rng: np.random.Generator) -> np.ndarray:
    """Paint a scene's object over an image (a float ``(size, size, 3)`` array); returns the new array.

    Args:
        image: what lies behind the object, 0..255.
        scene: the object's attributes (its ``background`` is not used here).
        rng: draws colour jitter; :func:`render` passes the one that drew the background.
    """
    size = image.shape[0]
    canvas = size * _SS
    rgb, mask = (_draw_face if scene["cls"] == "face" else _draw_object)(scene, rng, canvas)
    shift = ((scene["x"] - 0.5) * canvas, (scene["y"] - 0.5) * canvas)
    rgb = rgb.rotate(scene["angle"], resample=Image.BICUBIC, translate=shift)
    mask = mask.rotate(scene["angle"], resample=Image.BICUBIC, translate=shift)
    rgb = np.asarray(rgb.resize((size, size), Image.BOX), float)
    alpha = np.asarray(mask.resize((size, size), Image.BOX), float)[..., None] / 255
    return image * (1 - alpha) + rgb * alpha


def make_scene(cls: str, colour: str, background: str, seed: int = 0, **attrs) -> dict:
    """A complete scene dict from the attributes that matter, the rest drawn from ``seed``.

    Args:
        cls: one of :data:`CLASSES`.
        colour: one of :data:`COLOURS` (the hair colour for faces).
        background: one of :data:`BACKGROUNDS`.
        seed: fixes everything not given (pose, size, face details, texture noise).
        **attrs: any other attribute to fix, e.g. ``angle=0`` or ``glasses=True``.
    """
    rng = np.random.default_rng([seed, 7919])
    face = cls == "face"
    scene = {
        "cls": cls,
        "colour": colour,
        "background": background,
        "seed": int(seed),
        "size": float(rng.uniform(0.62, 0.8) if face else rng.uniform(0.5, 0.72)),
        "x": float(rng.uniform(0.4, 0.6)),
        "y": float(rng.uniform(0.42, 0.6) if face else rng.uniform(0.4, 0.6)),
        "angle": float(rng.uniform(-20, 20) if face else rng.uniform(-40, 40)),
        "pattern": "none",
        "skin": str(rng.choice(list(SKIN_TONES))) if face else "none",
        "hair_style": str(rng.choice(HAIR_STYLES)) if face else "none",
        "eyes": str(rng.choice(EYES)) if face else "none",
        "mouth": str(rng.choice(MOUTHS)) if face else "none",
        "glasses": bool(rng.random() < 0.3) if face else False,
        "hat": bool(rng.random() < 0.3) if face else False,
        "mark": "none",
        "subject": "none",
    }
    unknown = set(attrs) - set(scene)
    if unknown:
        raise KeyError(f"Unknown scene attributes {sorted(unknown)}; valid: {sorted(scene)}")
    scene.update(attrs)
    return scene


def sample_scene(seed: int) -> dict:
    """A random scene of the pretraining world (never a subject feature), fixed by ``seed``."""
    rng = np.random.default_rng([seed, 104729])
    cls = "face" if rng.random() < FACE_SHARE else str(rng.choice(OBJECT_CLASSES))
    return make_scene(cls, str(rng.choice(list(COLOURS))), str(rng.choice(BACKGROUNDS)), seed=seed)


OPEN_DETAILS = (("colour",), ("where",), ("colour", "where"))  # what an open caption may leave unsaid


def caption(scene: dict, template: int | None = None, leave_out: tuple[str, ...] = ()) -> str:
    """A Stable Diffusion style caption naming class, colour, background and face accessories.

    Args:
        scene: the attribute dict.
        template: index into the templates; None picks one from the scene's seed.
        leave_out: details the caption does not say: "colour" (for a face, its hair colour and
            accessories) and/or "where" (the background); the class is always named.
    """
    unknown = set(leave_out) - {"colour", "where"}
    if unknown:
        raise ValueError(f"leave_out takes 'colour' and 'where', not {sorted(unknown)}")
    templates = FACE_TEMPLATES if scene["cls"] == "face" else OBJECT_TEMPLATES
    if template is None:
        template = int(np.random.default_rng([scene["seed"], 31]).integers(len(templates)))
    text = templates[template % len(templates)]
    if "colour" in leave_out:
        text = text.replace(" with {colour} hair{extras}", "").replace("{colour} ", "")
    if "where" in leave_out:
        text = text.replace(" {where}", "")
    extras = ""
    if scene["cls"] == "face":
        wear = [w for w, on in (("glasses", scene["glasses"]), ("a hat", scene["hat"])) if on]
        extras = (" wearing " + " and ".join(wear)) if wear else ""
    where = BACKGROUND_PHRASES[scene["background"]]
    text = text.format(colour=scene["colour"], cls=scene["cls"], where=where, extras=extras)
    return re.sub(r"\ba (?=orange\b)", "an ", text)  # "an orange star", not "a orange star"


def training_caption(scene: dict, open_share: float = 0.0) -> str:
    """The caption a pretraining scene is trained with.

    A share ``open_share`` of scenes (chosen from the scene's seed) get an open caption that
    leaves out the colour, the place or both, so that short prompts such as DreamBooth's
    "a photo of a star" are familiar to the model rather than a request it never saw. The
    others get the full caption of :func:`caption`.
    """
    rng = np.random.default_rng([scene["seed"], 37])
    if rng.random() >= open_share:
        return caption(scene)
    return caption(scene, leave_out=OPEN_DETAILS[int(rng.integers(len(OPEN_DETAILS)))])


def sample_pair(seed: int, open_share: float = 0.0) -> tuple[Image.Image, str, dict]:
    """A random scene from ``seed``: its image, its training caption and its attributes."""
    scene = sample_scene(seed)
    return render(scene), training_caption(scene, open_share), scene


def parse_prompt(prompt: str) -> dict:
    """The attributes a prompt asks for (class, colour, background, glasses, hat), as far as it names them."""
    words = prompt.lower().replace(",", " ").split()
    text = " " + " ".join(words) + " "
    wanted: dict = {}
    for cls in CLASSES:
        if f" {cls} " in text:
            wanted["cls"] = cls
    for colour in COLOURS:
        if f" {colour} " in text:
            wanted["colour"] = colour
    for bg, phrase in BACKGROUND_PHRASES.items():
        if phrase in text:
            wanted["background"] = bg
    if wanted.get("cls") == "face":
        wanted["glasses"] = " glasses " in text
        wanted["hat"] = " hat " in text
    return wanted
