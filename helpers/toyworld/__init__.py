"""ToyWorld: a procedural world, its subjects, an evaluator and a miniature Stable Diffusion.

With ToyWorld every experiment of the course gives a measurable result on a laptop CPU:
``world`` draws captioned scenes, ``subjects`` the four DreamBooth subjects that the base
model never saw, ``pretrain`` trains the base model (``checkpoint``: the file it and the
autoencoder resume from), ``evaluator`` a small classifier that recognises what a generation
shows, and ``metrics`` turns its verdicts into the DreamBooth paper's measures. Nothing is imported or computed until a submodule is used.
"""
