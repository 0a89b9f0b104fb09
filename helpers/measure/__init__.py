"""Measuring: one score table under every figure, the step curves, and what a step costs.

``scores`` (the table, judged by ToyWorld's evaluator or the paper's backbones), ``backbones``
(DINO, CLIP-I, CLIP-T, PRES, DIV on real models), ``curves`` (fidelity against training steps:
the sweet spot), ``memory`` (the memory and time of a training step).
"""
