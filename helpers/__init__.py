"""Helpers for the DreamBooth course kit: the notebooks stay thin, and everything they share lives here.

A map of the package, one hop to any concept. Imports run one way, from the top of this list
down (``tests/test_imports.py`` holds the order and checks it):

- ``course/``: what a notebook opens with. ``setup`` (``setup_notebook``), ``continuation``
  (opening the course home: Drive on Colab, earlier notebooks' saved homes on Kaggle),
  ``uploads`` (the learner's photos), ``widgets`` (the notebooks' controls), ``doctor`` (is this
  install sound?), ``budget`` (the disk each notebook needs), ``cleanup`` (what may be deleted);
- ``share/``: a finished run for other tools. ``export`` (one file, kohya), ``hub`` (push to the Hub);
- ``study/``: the study re-run on ToyWorld. ``findings`` (each experiment's arms, trained and
  scored), ``verdicts`` (a finding over several seeds), ``findings_table`` (the README's table);
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
