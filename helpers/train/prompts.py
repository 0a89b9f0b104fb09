"""Prompts for a subject: its instance prompt, prompts that put it somewhere new, short labels for figures."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.train.data import read_manifest
from helpers.train.settings import TOY_SUBJECTS, Subject


def subject_prompts(subject: Subject, n: int = 3, unseen: bool = False) -> list[str]:
    """The instance prompt, then up to ``n - 1`` prompts that put the subject somewhere new.

    The extra prompts come from the ToyWorld manifest or ``data/subjects.json``; a subject
    without any (an upload) gets generic ones. ``unseen=True`` (notebook 01) puts a prompt that
    changes the subject itself, a colour or glasses its photos never show, in the last of at
    least three places: that is where an overfit model gives itself away.
    """
    toy_manifest = TOY_SUBJECTS / "manifest.json"
    toy = json.loads(toy_manifest.read_text())["subjects"] if toy_manifest.exists() else {}
    if subject.name in toy and Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve()):
        extra = toy[subject.name].get("recontext_prompts", [])
        changed = extra[-1:]  # ToyWorld's last prompt asks for an unseen colour, or glasses
    else:
        extra = read_manifest()["subjects"].get(subject.name, {}).get("prompts", [])
        changed = [p for p in extra if "wearing" in p][:1]
    token = f"{subject.identifier} {subject.class_noun}"
    extra = [p.replace(f"sks {subject.class_noun}", token) for p in extra] or [
        f"a photo of {token} on the beach", f"a painting of {token}"]
    prompts = [subject.instance_prompt, *extra][:n]
    changed = [p.replace(f"sks {subject.class_noun}", token) for p in changed]
    if unseen and n >= 3 and changed and changed[0] not in prompts:
        prompts[-1] = changed[0]
    return prompts


def short_prompt(prompt: str) -> str:
    """A prompt without its leading "a photo of ", for figure labels."""
    return prompt.removeprefix("a photo of ")
