# The install cell: scripts/build_notebooks.py puts these two cells where a notebook's source says "# %% install".

# %% [markdown]
# ## Setup
# On Colab or Kaggle the next cell fetches the kit and installs the library versions it was
# tested with (`constraints.txt`), keeping the platform's own torch; it says so when done. On
# your own machine (after `make course` or `pip install -e .`) it does nothing.

# %%
import os
import subprocess
import sys

HOSTED = "google.colab" in sys.modules or bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))
if HOSTED and not os.path.exists("kit"):
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/dreambooth-course/dreambooth-course-kit", "kit"], check=True)
    subprocess.run([sys.executable, "kit/scripts/hosted_install.py"], check=True)
if os.path.exists("kit/helpers"):
    sys.path.insert(0, os.path.abspath("kit"))
