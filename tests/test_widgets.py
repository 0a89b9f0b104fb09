"""The notebooks' controls on the installed ipywidgets (8.x in the venv, 7.7 under `make widgets-compat`).

Every control a notebook builds is built here through helpers.course.widgets, set, and run; the
upload button's two value shapes, tqdm's notebook bar and the text fallback are checked too.
"""

import io
import os
import sys
import tomllib
import types
import warnings
from datetime import UTC, datetime

import ipywidgets
import pytest
from packaging.requirements import Requirement
from PIL import Image

from helpers.base.paths import REPO_ROOT
from helpers.course import widgets as hw
from helpers.course.uploads import save_uploads, upload_widget
from helpers.course.widgets import (
    build_controls,
    dropdown,
    interactive_controls,
    log_slider,
    selection_slider,
    show_image_file,
    slider,
    text_box,
    uploaded_files,
)

MAJOR = hw.version_of(ipywidgets.__version__)[0]


def test_the_ipywidgets_imported_is_the_one_asked_for():
    asked = os.environ.get("EXPECTED_IPYWIDGETS")  # set by `make widgets-compat`, so it cannot test 8 unnoticed
    if asked:
        assert ipywidgets.__version__ == asked
    else:  # any environment: a version pyproject.toml accepts
        pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
        (bound,) = [Requirement(r) for r in pyproject["project"]["dependencies"] if r.startswith("ipywidgets")]
        assert bound.specifier.contains(ipywidgets.__version__)


def png_bytes(color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "PNG")
    return buffer.getvalue()


def controls_of(box) -> dict:
    return {w.description: w for w in box.children if hasattr(w, "value") and w.description}


def press(box):
    box.manual_button.click()


# --- every control the notebooks build ---------------------------------------------------------

def test_01_checkpoint_slider_redraws_on_every_move():
    calls = []

    def fn(step):
        calls.append({"step": step})

    box = build_controls(fn, manual=False, step=selection_slider(["step 50", "step 100", "final"], "final"))
    control = controls_of(box)["step"]
    assert isinstance(control, ipywidgets.SelectionSlider) and control.value == "final"
    assert not hasattr(box, "manual_button")
    control.value = "step 50"
    assert calls[-1] == {"step": "step 50"}


def test_01_extra_run_sliders_send_a_learning_rate_and_steps():
    calls = []

    def fn(study_lr, study_steps):
        calls.append({"study_lr": study_lr, "study_steps": study_steps})

    box = build_controls(fn, button="Train", study_lr=log_slider(1e-6, 1e-7, 1e-5),
                         study_steps=slider(800, 100, 2000, 100))
    lr, steps = controls_of(box)["study_lr"], controls_of(box)["study_steps"]
    assert isinstance(lr, ipywidgets.FloatLogSlider) and (lr.min, lr.max, lr.base) == (-7, -5, 10)
    assert isinstance(steps, ipywidgets.IntSlider) and (steps.min, steps.max, steps.step) == (100, 2000, 100)
    assert box.manual_button.description == "Train" and calls == []  # nothing runs before the button
    lr.value, steps.value = 3e-6, 1200
    press(box)
    assert calls == [{"study_lr": pytest.approx(3e-6), "study_steps": 1200}]


def test_02_prompt_box_sends_the_typed_prompt():
    calls = []

    def fn(prompt):
        calls.append({"prompt": prompt})

    box = build_controls(fn, button="Sample", prompt=text_box("a photo of sks dog"))
    assert isinstance(controls_of(box)["prompt"], ipywidgets.Text)
    controls_of(box)["prompt"].value = "sks dog on the moon"
    press(box)  # ipywidgets 8 also runs on typing's end (Enter), 7 on Enter alone
    assert calls[-1] == {"prompt": "sks dog on the moon"}


def test_03_scheduler_menu_and_steps():
    calls = []

    def fn(scheduler, study_steps):
        calls.append({"scheduler": scheduler, "study_steps": study_steps})

    box = build_controls(fn, scheduler=dropdown(["pndm", "ddim", "dpm++"], "ddim"), study_steps=slider(100, 10, 150, 10))
    menu = controls_of(box)["scheduler"]
    assert isinstance(menu, ipywidgets.Dropdown) and menu.value == "ddim"
    menu.value, controls_of(box)["study_steps"].value = "dpm++", 30
    press(box)
    assert calls == [{"scheduler": "dpm++", "study_steps": 30}]


def test_04_a_string_default_becomes_a_prompt_box():
    calls = []

    def fn(prompt="a painting of sks person wearing a hat"):
        calls.append({"prompt": prompt})

    box = build_controls(fn)
    press(box)
    assert calls == [{"prompt": "a painting of sks person wearing a hat"}]


def test_06_a_list_a_tuple_and_tick_boxes():
    calls = []

    def fn(use_8bit_adam=False, mixed_precision="no", gradient_checkpointing=False, micro_batch=4,
           cache_latents=False, train_text_encoder=False):
        calls.append({"use_8bit_adam": use_8bit_adam, "mixed_precision": mixed_precision, "micro_batch": micro_batch,
                      "ticked": (gradient_checkpointing, cache_latents, train_text_encoder)})

    box = build_controls(fn, button="Measure", mixed_precision=["no", "fp16", "bf16"], micro_batch=(1, 4))
    found = controls_of(box)
    assert isinstance(found["mixed_precision"], ipywidgets.Dropdown)
    assert isinstance(found["micro_batch"], ipywidgets.IntSlider) and found["micro_batch"].value == 4
    assert isinstance(found["use_8bit_adam"], ipywidgets.Checkbox)
    found["mixed_precision"].value, found["micro_batch"].value, found["use_8bit_adam"].value = "bf16", 2, True
    press(box)
    assert calls == [{"use_8bit_adam": True, "mixed_precision": "bf16", "micro_batch": 2,
                      "ticked": (False, False, False)}]


def test_07_seed_and_lora_scale_sliders_start_at_the_functions_defaults():
    calls = []

    def fn(prompt="a photo of sks dog", seed=0, lora_scale=1.0):
        calls.append({"prompt": prompt, "seed": seed, "lora_scale": lora_scale})

    box = build_controls(fn, button="Draw", seed=(0, 99), lora_scale=(0.0, 1.5, 0.25))
    found = controls_of(box)
    assert isinstance(found["seed"], ipywidgets.IntSlider) and found["seed"].value == 0
    assert isinstance(found["lora_scale"], ipywidgets.FloatSlider) and found["lora_scale"].value == 1.0
    assert found["lora_scale"].step == 0.25
    found["seed"].value, found["lora_scale"].value = 42, 0.5
    press(box)
    assert calls == [{"prompt": "a photo of sks dog", "seed": 42, "lora_scale": 0.5}]


def test_a_tuple_without_a_default_starts_in_the_middle():
    assert hw.as_control((0, 99)).value == 49
    assert hw.as_control((0.0, 1.5, 0.25)).value == 0.75


def test_a_parameter_without_a_control_is_a_mistake_in_the_notebook():
    with pytest.raises(TypeError, match="seed"):
        build_controls(lambda seed: None)


def test_07_image_shows_as_a_widget_in_a_live_notebook(tmp_path, monkeypatch, live_notebook):
    path = tmp_path / "draw.png"
    path.write_bytes(png_bytes())
    show_image_file(path, width=256)
    (image,) = live_notebook
    assert isinstance(image, ipywidgets.Image) and bytes(image.value) == path.read_bytes()
    assert image.format == "png" and int(image.width) == 256


# --- a live notebook and the text fallback -------------------------------------------------------

@pytest.fixture()
def live_notebook(monkeypatch):
    """Pretend to be a kernel; returns the list of what the code displays."""
    import IPython.display

    monkeypatch.setenv("COURSE_INTERACTIVE", "1")
    monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel") or types.ModuleType("ipykernel"))
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    return shown


def test_in_a_live_notebook_the_controls_are_displayed(live_notebook):
    calls = []

    def fn(scheduler, study_steps):
        calls.append({"scheduler": scheduler, "study_steps": study_steps})

    interactive_controls(fn, scheduler=dropdown(["pndm", "ddim"]), study_steps=slider(50, 10, 150, 10))
    (box,) = live_notebook
    assert isinstance(box, ipywidgets.interactive) and set(controls_of(box)) == {"scheduler", "study_steps"}
    assert calls == []  # a manual cell waits for its button


def test_on_colab_ipywidgets_8_switches_on_colabs_widget_manager(live_notebook, monkeypatch):
    switched = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: switched.append(True))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(hw, "detect_platform", lambda: "colab")
    interactive_controls(lambda prompt: None, prompt=text_box("x"))
    assert switched == ([True] if MAJOR >= 8 else [])  # Colab draws 7.x itself


def test_fallback_runs_once_with_the_starting_values_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_INTERACTIVE", "0")
    calls = []

    def fn(scheduler, study_steps):
        calls.append({"scheduler": scheduler, "study_steps": study_steps})

    interactive_controls(fn, scheduler=dropdown(["pndm", "ddim"], "ddim"), study_steps=slider(100, 10, 150, 10),
                         hint="TRY_SCHEDULER and TRY_STEPS set the values used here.")
    assert calls == [{"scheduler": "ddim", "study_steps": 100}]
    (line,) = capsys.readouterr().out.splitlines()
    assert "scheduler (menu of pndm, ddim)" in line and "study_steps (slider 10..150)" in line
    assert "COURSE_INTERACTIVE" in line and "TRY_SCHEDULER" in line
    assert line.endswith("Ran once with scheduler='ddim', study_steps=100.")


def test_fallback_can_skip_the_call_or_run_something_else(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_INTERACTIVE", "0")
    calls = []

    def fn(study_lr, study_steps):
        calls.append({"study_lr": study_lr, "study_steps": study_steps})

    interactive_controls(fn, fallback=False, study_lr=log_slider(1e-6, 1e-7, 1e-5),
                         study_steps=slider(800, 100, 2000, 100))
    assert calls == [] and "log slider 1e-07..1e-05" in capsys.readouterr().out
    other = []
    interactive_controls(fn, fallback=lambda: other.append("ran"), study_lr=(1, 3), study_steps=(1, 3))
    assert other == ["ran"] and calls == []


def test_fallback_image_prints_where_it_was_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_INTERACTIVE", "0")
    show_image_file(tmp_path / "run_seed0_scale1.0.png")
    assert capsys.readouterr().out == "saved run_seed0_scale1.0.png\n"


def test_each_reason_for_no_widgets_says_what_to_do(monkeypatch):
    monkeypatch.setenv("COURSE_INTERACTIVE", "0")
    assert "unset it" in hw.why_no_widgets()
    monkeypatch.setenv("COURSE_INTERACTIVE", "1")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert "open it in Jupyter" in hw.why_no_widgets()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert hw.why_no_widgets() is None
    monkeypatch.setattr(ipywidgets, "__version__", "7.6.5")
    assert "older than 7.7" in hw.why_no_widgets()
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    assert "pip install 'ipywidgets>=7.7'" in hw.why_no_widgets()


# --- uploads --------------------------------------------------------------------------------------

def test_uploaded_files_reads_both_majors_and_colab():
    content = png_bytes()
    v8 = ({"name": "a.png", "type": "image/png", "size": len(content), "content": memoryview(content)},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": len(content)}, "content": content}}
    colab = {"a.png": content}
    for value in (v8, v7, colab):
        assert uploaded_files(value) == [("a.png", content)]


def upload(button, name: str, content: bytes) -> None:
    """What the browser does when a file is chosen, on the installed major."""
    meta = {"name": name, "type": "image/png", "size": len(content)}
    if MAJOR >= 8:
        button.value = ({**meta, "content": memoryview(content), "last_modified": datetime.now(UTC)},)
    else:  # 7.x: data and metadata arrive, then the counter moves and value is rebuilt
        button.metadata, button.data = [{**meta, "lastModified": 0}], [content]
        button._counter += 1


def test_upload_button_saves_the_chosen_photo(tmp_path):
    box = upload_widget(tmp_path / "subject")
    button, status = box.children
    assert isinstance(button, ipywidgets.FileUpload) and button.multiple
    upload(button, "dog.png", png_bytes())
    assert (tmp_path / "subject" / "dog.png").read_bytes() == png_bytes()
    assert status.value.startswith("saved 1 image(s)")
    upload(button, "notes.png", b"not an image")
    assert "notes.png" in status.value and "not an image" in status.value


def test_save_uploads_takes_the_7x_shape(tmp_path):
    saved = save_uploads({"cat.png": {"metadata": {"name": "cat.png"}, "content": png_bytes()}}, tmp_path)
    assert [p.name for p in saved] == ["cat.png"]


# --- tqdm's progress bars -------------------------------------------------------------------------

@pytest.fixture()
def fresh_tqdm(monkeypatch):
    """Import tqdm.autonotebook anew as a notebook kernel would; sys.modules is put back afterwards."""
    names = ("tqdm.autonotebook", "tqdm.notebook", "tqdm.auto")
    saved = {name: sys.modules.pop(name, None) for name in names}
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    yield
    for name, module in saved.items():
        sys.modules.pop(name, None)
        if module is not None:
            sys.modules[name] = module


def test_tqdm_draws_its_notebook_bar_with_the_installed_ipywidgets(fresh_tqdm):
    import tqdm.autonotebook
    import tqdm.notebook

    assert tqdm.autonotebook.tqdm is tqdm.notebook.tqdm
    bar = tqdm.autonotebook.tqdm(range(3), desc="training")
    assert list(bar) == [0, 1, 2]
    assert any(isinstance(w, ipywidgets.FloatProgress) for w in bar.container.children)


def test_tqdm_falls_back_to_text_without_ipywidgets(fresh_tqdm, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        import tqdm.autonotebook
    import tqdm.std

    assert tqdm.autonotebook.tqdm is tqdm.std.tqdm
