"""Training: a run's settings, its data and models, its life cycle, and the three trainers.

``settings`` (the learner's choices and :func:`~helpers.train.settings.study_config`), ``config``
(a run's fields and its hash), ``data`` (image folders), ``prompts``, ``batches``,
``class_images``, ``models`` (load or build Stable Diffusion), ``sampling`` (the sampler and its
seeded latents), ``optim``, ``runs`` (the life cycle shared by every trainer), ``dreambooth``,
``lora``, ``textual_inversion``, ``modelcard`` (the README a finished run carries).
"""
