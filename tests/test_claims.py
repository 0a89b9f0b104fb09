"""The claims table: every status is read from the committed measurements, and follows them when they change."""

import copy
import json

import pytest

from helpers import cli
from helpers.base.paths import REPO_ROOT
from helpers.errors import LearnerError
from helpers.study import claims
from helpers.train.prompts import subject_prompts
from helpers.train.settings import prepare_subject


@pytest.fixture(scope="module")
def records():
    return claims.load_findings()


def test_every_claim_has_a_status_on_both_profiles(records):
    cpu, gpu = claims.cpu_statuses(records), claims.gpu_statuses()
    assert {c.key for c in claims.CLAIMS} == set(cpu) == set(gpu)
    assert all(s.status in claims.STATUSES for s in (*cpu.values(), *gpu.values()))


def test_cpu_statuses_follow_the_pooled_verdicts(records):
    cpu = claims.cpu_statuses(records)
    # the committed findings: the trained text encoder learns the face less often; EMA makes no difference
    assert cpu["text_encoder"].status == claims.OPPOSITE
    assert cpu["ema"].status == claims.REPRODUCED
    assert cpu["schedulers"].status == claims.NOT_REPRODUCED
    assert "-0.10 [-0.21, -0.01]" in cpu["text_encoder"].evidence
    assert "3 training seeds" in cpu["text_encoder"].rests_on


def _set_share(records, key, label, value):
    for r in records:
        for f in r["findings"]:
            if f["key"] == key and label in f["arms"]:
                f["arms"][label]["subject_fidelity"] = value


def test_a_changed_finding_changes_the_text(records):
    changed = copy.deepcopy(records)
    _set_share(changed, "text_encoder", "text encoder trained", 1.0)
    _set_share(changed, "text_encoder", "frozen text encoder", 0.25)
    before, after = claims.table(records), claims.table(changed)
    assert before != after
    assert claims.cpu_statuses(changed)["text_encoder"].status != claims.OPPOSITE
    assert claims.takeaway("text_encoder", "cpu", changed) != claims.takeaway("text_encoder", "cpu", records)


def test_gpu_memory_is_read_from_the_gpu_report(tmp_path):
    row = {"steps_timed": 10, "device": "some GPU"}
    report = {"rows": [{**row, "name": "unet, fp16, AdamW", "peak_bytes": 17 * 2**30},
                       {**row, "name": "unet, fp16+8bit+ckpt", "peak_bytes": 9 * 2**30}]}
    (tmp_path / "train_step_gpu.json").write_text(json.dumps(report))
    memory = claims.gpu_statuses(tmp_path)["memory"]
    assert memory.status == claims.PARTLY and "17.0 GiB" in memory.evidence and "some GPU" in memory.rests_on
    assert claims.gpu_statuses(tmp_path / "none")["memory"].status == claims.NOT_MEASURED


def test_takeaway_on_gpu_shows_the_cpu_measurement_while_gpu_is_unmeasured(records):
    text = claims.takeaway("learning_rate", "gpu", records)
    assert "On `gpu`" in text and "not measured yet" in text and "On `cpu`" in text
    assert claims.takeaway("textual_inversion", "cpu", records).startswith("The study, as its authors' opinion")


def test_claims_command_renews_the_table_between_the_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    start, end = claims.MARKERS
    readme.write_text(f"# Title\n\n{start}\nold table\n{end}\n\nafter\n")
    assert cli.main(["claims", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and claims.table() in text and text.endswith("\nafter\n")
    readme.write_text("no markers\n")
    with pytest.raises(LearnerError):
        claims.fill_readme(readme.read_text())


def test_notebook_01_asks_for_an_unseen_colour_without_moving_the_first_two_prompts():
    star = prepare_subject("dotted_star")
    plain, unseen = subject_prompts(star, 3), subject_prompts(star, 3, unseen=True)
    assert unseen[:2] == plain[:2]  # the runs' validation prompts, and so their hashes, stay the same
    assert "purple" in unseen[2] and "purple" not in " ".join(plain)
    assert subject_prompts(star, 2, unseen=True) == subject_prompts(star, 2)


def test_the_readme_table_is_the_measured_one():
    readme = (REPO_ROOT / "README.md").read_text()
    assert claims.fill_readme(readme) == readme, "run `python -m helpers claims --readme README.md`"
