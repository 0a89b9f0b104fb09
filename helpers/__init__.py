"""Helpers for the DreamBooth course kit: the notebooks stay thin, and everything they share lives here.

A map of the package, one hop to any concept. Imports run one way, from the top of this list
down (``tests/test_imports.py`` holds the order and checks it):

- ``course/``: what a notebook opens with. ``setup`` (``setup_notebook`` and the ``Notebook`` it
  returns), ``continuation`` (opening the course home: Drive on Colab, earlier notebooks' saved
  homes on Kaggle), ``uploads`` (the learner's photos), ``widgets`` (the notebooks' controls),
  ``doctor`` (is this install sound?), ``budget`` (the disk each notebook needs), ``cleanup``
  (what may be deleted);
- ``share/``: a finished run for other tools. ``export`` (one file, kohya), ``hub`` (push to the Hub);
- ``study/``: the study re-run on ToyWorld. ``arms`` (every experiment's values, declared once:
  the notebooks' configuration cells, the findings and the disk budget read them), ``findings``
  (each experiment trained and scored), ``verdicts`` (a finding over several seeds), ``claims``
  (each claim of the study and its status per profile, read from the measurements),
  ``findings_table`` (a profile's score tables as markdown);
- ``measure/``: ``scores`` (the one table under every figure: ToyWorld's evaluator or the
  paper's backbones), ``backbones`` (DINO, CLIP-I, CLIP-T, PRES, DIV), ``curves`` (fidelity
  against steps: the sweet spot), ``memory`` (what a training step costs);
- ``playground`` (draw from a finished run) and ``sample`` (runs sampled side by side);
- ``toyworld/``: the miniature world, its subjects, its evaluator and its Stable Diffusion;
- ``train/``: ``settings`` (the learner's choices; ``study_config``), ``config`` (a run's fields
  and hash), ``data``, ``prompts``, ``batches``, ``class_images``, ``models``, ``sampling``,
  ``optim``, ``runs`` (the life cycle every trainer shares), ``dreambooth``, ``lora``,
  ``textual_inversion``, ``modelcard``;
- ``figures`` (every picture);
- ``base/``: ``home`` (the course home), ``paths``, ``storage`` (where a run's weights live),
  ``stats`` (shares, means and their intervals);
- ``profiles`` (gpu / cpu / smoke) and ``errors`` (the one exception a learner can cause);
- ``cli`` and ``__main__``: the command line (``course-kit`` or ``python -m helpers``).

Importing the package has no side effects and loads no library: nothing is seeded, downloaded
or plotted until a function is called.
"""

__version__ = "0.1.0"

# The notebooks' API: every name a notebook imports, each from the module that holds it. A module
# in the list (``figures``, ``widgets``, ...) is imported whole, for its many small helpers.
_API = {
    # opening: 00_setup, then every notebook's first cell
    "setup_notebook": "helpers.course.setup",
    "open_home": "helpers.course.continuation",
    "diagnose": "helpers.course.doctor",
    "ensure_photos": "helpers.course.setup",
    "default_settings": "helpers.train.settings",
    "prepare_subject": "helpers.train.settings",
    "get_profile": "helpers.profiles",
    "load_images": "helpers.train.data",
    "open_rgb": "helpers.train.data",
    "subject_prompts": "helpers.train.prompts",
    # training
    "study_config": "helpers.train.settings",
    "run_finished": "helpers.train.settings",
    "train_dreambooth": "helpers.train.dreambooth",
    "train_dreambooth_on_gpus": "helpers.train.dreambooth",
    "generate_class_images": "helpers.train.class_images",
    "load_components": "helpers.train.models",
    "release_weights": "helpers.base.storage",
    # sampling, scoring, using a run
    "sample_runs": "helpers.sample",
    "score_comparison": "helpers.measure.scores",
    "Playground": "helpers.playground",
    # modules used whole
    "arms": "helpers.study.arms",
    "claims": "helpers.study.claims",
    "figures": "helpers.figures",
    "widgets": "helpers.course.widgets",
    "sample": "helpers.sample",
    "sampling": "helpers.train.sampling",
    "dreambooth": "helpers.train.dreambooth",
    "curves": "helpers.measure.curves",
    "memory": "helpers.measure.memory",
    "textual_inversion": "helpers.train.textual_inversion",
    "cleanup": "helpers.course.cleanup",
    "home": "helpers.base.home",
    "paths": "helpers.base.paths",
}
__all__ = list(_API)


def __getattr__(name: str):
    """Import a name of the API on first use, so that ``import helpers`` loads no library."""
    if name not in _API:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_API[name])
    value = module if module.__name__.rpartition(".")[2] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
