"""The ToyWorld subjects: the toy counterparts of the study's objects and person.

Each subject is an ordinary ToyWorld class with one feature that the pretraining world
never draws (a pattern, or the face's eyepatch), so the base model cannot know it: it has
to be learned from the 5 instance images, exactly as DreamBooth learns a real subject.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from helpers.toyworld import world

INSTANCE_COUNT = 5
_CONTEXTS = ("sand", "grass", "sky", "water", "brick")


@dataclass(frozen=True)
class ToySubject:
    """A ToyWorld subject as the world draws it: its class, the attributes that make it itself, its mark.

    (The learner-facing subject, a folder of photos and its prompts, is :class:`helpers.train.settings.Subject`.)
    """

    name: str
    cls: str
    attrs: dict  # scene attributes fixed for this subject (colour, pattern, face details ...)
    identified_by: str  # in words, for the manifest and the notebooks
    instance_backgrounds: tuple[str, ...] = field(default=("plain", "grass", "brick", "plain", "water"))

    @property
    def instance_prompt(self) -> str:
        """The DreamBooth prompt for the instance images ("a photo of sks star")."""
        return f"a photo of sks {self.cls}"

    @property
    def class_prompt(self) -> str:
        """The prompt for prior-preservation class images ("a photo of a star")."""
        return f"a photo of a {self.cls}"

    def recontext_prompts(self) -> list[str]:
        """Prompts that put the subject in new places, plus one that changes an attribute."""
        prompts = [f"a photo of sks {self.cls} {world.BACKGROUND_PHRASES[bg]}" for bg in _CONTEXTS]
        if self.cls == "face":
            prompts.append(f"a photo of sks {self.cls} wearing glasses on the beach")
        else:
            other = "purple" if self.attrs["colour"] != "purple" else "orange"
            prompts.append(f"a photo of a {other} sks {self.cls} on the grass")
        return prompts


SUBJECTS: dict[str, ToySubject] = {
    s.name: s
    for s in (
        ToySubject(
            "dotted_star", "star", {"colour": "red", "pattern": "dots"}, "a red star with white polka dots"
        ),
        ToySubject(
            "checked_cube",
            "cube",
            {"colour": "blue", "pattern": "checks"},
            "a blue cube with a yellow checkerboard",
        ),
        ToySubject(
            "striped_ball",
            "ball",
            {"colour": "green", "pattern": "stripes"},
            "a green ball with white stripes",
        ),
        ToySubject(
            "patch_face",
            "face",
            {
                "colour": "orange",
                "skin": "brown",
                "hair_style": "long",
                "eyes": "wide",
                "mouth": "smile",
                "glasses": False,
                "hat": True,
                "mark": "eyepatch",
            },
            "a brown-skinned face with long orange hair, a party hat and a black eyepatch over the left eye",
        ),
    )
}
SUBJECT_IDS = ("none",) + tuple(SUBJECTS)  # label order of the evaluator's subject head


def subject_scene(name: str, seed: int, background: str | None = None, **overrides) -> dict:
    """A scene showing subject ``name``; pose and size come from ``seed``.

    Args:
        name: a key of :data:`SUBJECTS`.
        seed: fixes pose, size and texture.
        background: where it is; None picks one from the seed.
        **overrides: other attributes to change (e.g. ``angle=0``).
    """
    subject = SUBJECTS[name]
    if background is None:
        background = world.BACKGROUNDS[seed % len(world.BACKGROUNDS)]
    attrs = {k: v for k, v in subject.attrs.items() if k != "colour"}
    attrs.update(overrides)
    return world.make_scene(
        subject.cls, subject.attrs["colour"], background, seed=seed, subject=name, **attrs
    )


def instance_scenes(name: str) -> list[dict]:
    """The fixed scenes of a subject's instance images (varied pose and background)."""
    subject = SUBJECTS[name]
    base = 1000 * (list(SUBJECTS).index(name) + 1)  # distinct seeds per subject
    return [
        subject_scene(name, base + i, bg)
        for i, bg in enumerate(subject.instance_backgrounds[:INSTANCE_COUNT])
    ]


def instance_images(name: str) -> list[Image.Image]:
    """The instance images of subject ``name``, rendered afresh."""
    return [world.render(scene) for scene in instance_scenes(name)]


def write_subjects(out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<name>/NN.png`` for every subject and ``manifest.json``; returns the manifest path."""
    out_dir = Path(out_dir)
    manifest = {
        "generated_by": "python -m helpers toyworld subjects (procedural renders, no outside images)",
        "licence": "Apache-2.0",
        "note": "Faces use the class noun 'face' (the study used 'person'): it is the word the base model learned.",
        "subjects": {},
    }
    for name, subject in SUBJECTS.items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for i, scene in enumerate(instance_scenes(name)):
            path = folder / f"{i:02d}.png"
            world.render(scene).save(path, optimize=True)
            files.append(path.relative_to(out_dir).as_posix())
        manifest["subjects"][name] = {
            **{k: v for k, v in asdict(subject).items() if k != "instance_backgrounds"},
            "class_noun": subject.cls,
            # what the evaluator's subject head keys on: the feature the pretraining world never draws
            "unique_feature": f"mark={subject.attrs['mark']}"
            if "mark" in subject.attrs
            else f"pattern={subject.attrs['pattern']}",
            "instance_prompt": subject.instance_prompt,
            "class_prompt": subject.class_prompt,
            "recontext_prompts": subject.recontext_prompts(),
            "images": files,
        }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


CONTEXTS = ("sand", "grass", "sky", "water", "brick")  # recontextualisation backgrounds


def scoring_prompts(name: str, identifier: str = "sks") -> dict[str, list[str]]:
    """The prompts an arm is scored on, by role.

    ``instance``: the training prompt; ``context``: the subject in each new place; ``attribute``:
    the subject with something the photos never show (another colour, or glasses on a face);
    ``class``: the plain class prompt, for language drift.
    """
    subject = SUBJECTS[name]
    context = [f"a photo of sks {subject.cls} {world.BACKGROUND_PHRASES[bg]}" for bg in CONTEXTS]
    attribute = [p for p in subject.recontext_prompts() if p not in context]
    roles = {"instance": [f"a photo of sks {subject.cls}"], "context": context, "attribute": attribute}
    named = {role: [p.replace(f"sks {subject.cls}", f"{identifier} {subject.cls}") for p in ps]
             for role, ps in roles.items()}
    return {**named, "class": [subject.class_prompt]}
