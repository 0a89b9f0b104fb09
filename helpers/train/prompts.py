"""Prompts for a subject: its instance prompt, prompts that put it somewhere new, short labels for figures."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.train.data import read_manifest
from helpers.train.settings import TOY_SUBJECTS, Subject


def subject_prompts(subject: Subject, n: int = 3) -> list[str]:
    """The instance prompt, then up to ``n - 1`` prompts that put the subject somewhere new.

    The extra prompts come from the ToyWorld manifest or ``data/subjects.json``; a subject
    without any (an upload) gets generic ones.
    """
    toy_manifest = TOY_SUBJECTS / "manifest.json"
    toy = json.loads(toy_manifest.read_text())["subjects"] if toy_manifest.exists() else {}
    if subject.name in toy and Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve()):
        extra = toy[subject.name].get("recontext_prompts", [])
    else:
        extra = read_manifest()["subjects"].get(subject.name, {}).get("prompts", [])
    token = f"{subject.identifier} {subject.class_noun}"
    extra = [p.replace(f"sks {subject.class_noun}", token) for p in extra] or [
        f"a photo of {token} on the beach", f"a painting of {token}"]
    return [subject.instance_prompt, *extra][:n]


def short_prompt(prompt: str) -> str:
    """A prompt without its leading "a photo of ", for figure labels."""
    return prompt.removeprefix("a photo of ")
