"""Helpers for the DreamBooth course kit.

The notebooks stay thin; everything they share lives here, one module per concern:
``profiles`` (gpu / cpu / smoke settings), ``models`` (load or build Stable Diffusion),
``data`` (subject and class images), ``sampling`` (schedulers and seeded generation),
``figures`` (grids and plots) and ``doctor`` (what this machine can do).

Importing the package has no side effects: nothing is seeded, downloaded or plotted
until a function is called.
"""

__version__ = "0.1.0"
