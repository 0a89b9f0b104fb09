"""Every experiment's arms, declared once, at the study's full scale.

The notebooks' configuration cells start from these values (``STUDY_LR = arms.LOW_LR``), so a
learner still sees and edits them there; the findings (:mod:`helpers.study.findings`, run by
``benchmarks/toyworld_findings.py``) and the disk budget (:mod:`helpers.course.budget`) train and
count exactly these. The profile maps learning rates and steps to what runs on a machine
(:func:`helpers.train.config.config_for_profile`). A run's hash comes from its config, so the
saved runs are found again as long as these values stay as they are.
"""

# The subjects ToyWorld's findings train on.
OBJECT_SUBJECTS = ("dotted_star", "checked_cube", "striped_ball")
FACE_SUBJECT = "patch_face"

# Objects (notebooks 01, 03, 06, 07): batch 4, no prior preservation.
HIGH_LR, LOW_LR = 5e-6, 2e-6  # notebook 01: the high rate overfits at 400 steps, the low one learns
OBJECT_STEPS = 400
SWEET_SPOT_STEPS = (400, 800, 1600)  # the low rate for longer and longer (findings' "steps")
SWEET_SPOT_SUBJECTS = ("dotted_star", "striped_ball")
OVERFIT_RUN = (HIGH_LR, OBJECT_STEPS)  # notebook 03 samples notebook 01's high-rate run

# Faces (notebooks 02, 04, 05): batch 2.
FACE_LR, FACE_STEPS = LOW_LR, 1200
PRIOR_LOSS_WEIGHT = 1.0
FACE_EXTRA_ARMS = [(2e-6, 800), (1e-6, 1200)]  # notebook 02's other face runs, with prior preservation

# Samplers (notebook 03): the study's inference steps, and the samplers that came after it.
SCHEDULERS = ("pndm", "lms", "ddim", "dpm++", "euler", "unipc")
STUDY_INFERENCE_STEPS = (50, 100)
FINDINGS_INFERENCE_STEPS = (25, 50)  # the findings' halved steps on ToyWorld
NEWER_SCHEDULERS = ("dpm++", "euler", "unipc")

# Textual inversion, then DreamBooth from it (notebook 05).
PLACEHOLDER = "<sks>"
TI_STEPS, TI_LR = 2000, 5e-4
DB_AFTER_TI_STEPS, DB_AFTER_TI_LR = 500, 1e-6

# LoRA (notebook 07): diffusers' train_dreambooth_lora.py rate.
LORA_LR, LORA_RANK = 1e-4, 4
