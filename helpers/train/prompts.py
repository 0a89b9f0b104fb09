"""Prompts for a subject: its instance prompt, prompts that put it somewhere new, short labels for figures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from helpers.train.data import read_manifest
from helpers.train.settings import TOY_SUBJECTS, Subject

PROMPT_ROLES = ("instance", "context", "attribute", "class")  # what a prompt asks of a fine-tuned model


def _extra_prompts(subject: Subject) -> tuple[list[str], list[str]]:
    """The subject's prompts beyond its instance prompt, and those of them that change the subject itself.

    They come from the ToyWorld manifest or ``data/subjects.json``; a subject without any (an
    upload) gets generic ones. The changing prompts ask for a colour or glasses the photos
    never show (ToyWorld's last prompt) or for something the subject wears.
    """
    toy_manifest = TOY_SUBJECTS / "manifest.json"
    toy = json.loads(toy_manifest.read_text())["subjects"] if toy_manifest.exists() else {}
    if subject.name in toy and Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve()):
        extra = toy[subject.name].get("recontext_prompts", [])
        changed = extra[-1:]
    else:
        extra = read_manifest()["subjects"].get(subject.name, {}).get("prompts", [])
        changed = [p for p in extra if "wearing" in p]
    token = f"{subject.identifier} {subject.class_noun}"
    extra = [p.replace(f"sks {subject.class_noun}", token) for p in extra] or [
        f"a photo of {token} on the beach", f"a painting of {token}"]
    return extra, [p.replace(f"sks {subject.class_noun}", token) for p in changed]


def subject_prompts(subject: Subject, n: int = 3, unseen: bool = False) -> list[str]:
    """The instance prompt, then up to ``n - 1`` prompts that put the subject somewhere new.

    ``unseen=True`` (notebook 01) puts a prompt that changes the subject itself, a colour or
    glasses its photos never show, in the last of at least three places: that is where an
    overfit model gives itself away.
    """
    extra, changed = _extra_prompts(subject)
    prompts = [subject.instance_prompt, *extra][:n]
    if unseen and n >= 3 and changed and changed[0] not in prompts:
        prompts[-1] = changed[0]
    return prompts


def role_images(images: Mapping[str, Sequence], roles: Mapping[str, Sequence[str]], *names: str) -> tuple[list, list[str]]:
    """The images of ``names``' prompts, role by role in prompt order, and each image's prompt.

    ``images`` maps prompts to their images; ``roles`` is :func:`prompt_roles`' answer (or
    ToyWorld's ``scoring_prompts``). A role or a prompt without images adds nothing.
    """
    pairs = [(im, p) for role in names for p in roles.get(role, ()) for im in images.get(p, ())]
    return [im for im, _ in pairs], [p for _, p in pairs]


def prompt_roles(subject: Subject, prompts, class_prompt: str | None = None) -> dict[str, list[str]]:
    """Sort prompts by what they ask of the model, ``{role: prompts}`` with every role of :data:`PROMPT_ROLES`.

    ``instance``: the training prompt; ``attribute``: the subject changed (see
    :func:`subject_prompts`); ``class``: the plain class prompt, for language drift;
    ``context``: any other prompt, the subject somewhere new. Both judges of a score table
    read the same roles (:mod:`helpers.measure.scores`).
    """
    _, changed = _extra_prompts(subject)
    roles: dict[str, list[str]] = {role: [] for role in PROMPT_ROLES}
    for prompt in dict.fromkeys(prompts):
        role = ("class" if prompt == class_prompt else "instance" if prompt == subject.instance_prompt
                else "attribute" if prompt in changed else "context")
        roles[role].append(prompt)
    return roles


def short_prompt(prompt: str) -> str:
    """A prompt without its leading "a photo of ", for figure labels."""
    return prompt.removeprefix("a photo of ")
