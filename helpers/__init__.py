"""Helpers for the DreamBooth course kit.

The notebooks stay thin; everything they share lives here, one module per concern, with
imports running one way (notebooks -> experiments -> trainers -> run life cycle -> parts):

- settings: ``profiles`` (gpu / cpu / smoke), ``config`` (a run's settings and its hash),
  ``course`` (the learner's choices and subjects; ``setup_notebook``), ``home`` (the course home:
  where a learner's work lives on Colab, Kaggle or a laptop), ``continuation`` (on Kaggle, the homes
  earlier notebooks saved, brought into this one), ``paths``;
- parts: ``models`` (load or build Stable Diffusion), ``data`` (image folders on disk), ``uploads``
  (the learner's own photos), ``widgets`` (the notebooks' controls on ipywidgets 7 and 8),
  ``batches`` (the training dataset and its batches), ``class_images``, ``sampling``, ``optim``;
- training: ``runs`` (a run's life cycle, shared by every trainer), ``training`` (DreamBooth),
  ``lora`` (LoRA adapters for DreamBooth), ``textual_inversion``, ``memory`` (what a step costs),
  ``cleanup`` (what in the course home can be deleted);
- experiments: ``prompts``, ``comparisons`` (runs sampled side by side), ``scores`` (the measure
  table under every figure: ToyWorld's evaluator or the paper's backbones), ``measures`` (DINO,
  CLIP-I, CLIP-T, PRES, DIV on real models), ``stats`` (counts and intervals), ``figures`` (every
  picture), ``sweet_spot`` (fidelity against training steps), ``findings`` (the study re-run on
  ToyWorld), ``verdicts`` (the findings over several training seeds), ``findings_table`` (a
  profile's column of the README's findings table);
- using and sharing a model: ``playground`` (draw from a finished run), ``export`` (one file for other
  tools), ``modelcard``, ``hub_push``;
- ``toyworld/`` (the miniature world, its model and evaluator), ``doctor``, ``cli`` (the command line).

Importing the package has no side effects: nothing is seeded, downloaded or plotted
until a function is called.
"""

__version__ = "0.1.0"
