# The install cell: scripts/build_notebooks.py puts these two cells where a notebook's source says "# %% install".

# %% [markdown]
# ## Setup
# On Colab or Kaggle the next cell fetches the kit and installs the library versions it was
# tested with (`constraints.txt`), keeping the platform's own torch, ipywidgets, numpy and pillow.
# It ends with one line saying what is installed, or with the one reason it stopped (pip's own
# output goes to `logs/install.log` in your course home). Running it again finishes an install
# that was cut short, and is quick once the install is complete. On your own machine (after
# `make course` or `pip install -e .`) it does nothing.

# %%
import os
import shutil
import subprocess
import sys

HOSTED = "google.colab" in sys.modules or bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))
KIT_SOURCE = os.environ.get("COURSE_KIT_SOURCE", "https://github.com/dreambooth-course/dreambooth-course-kit")


class InstallStopped(Exception):
    def _render_traceback_(self):  # Jupyter shows this one line instead of a traceback
        return [f"Install stopped: {self}"]


if HOSTED and not os.path.exists("kit/scripts/hosted_install.py"):
    shutil.rmtree("kit", ignore_errors=True)  # what an interrupted download left
    clone = subprocess.run(["git", "clone", "-q", "--depth", "1", KIT_SOURCE, "kit"], capture_output=True, text=True)
    if any(sign in clone.stderr for sign in ("Could not resolve host", "Failed to connect", "unreachable")):
        raise InstallStopped("this notebook has no internet, which the install needs. On Kaggle turn it on in the panel"
                             " on the right: Settings > Internet > On (it needs a phone-verified account); on Colab "
                             "reconnect. Then run this cell again.")
    if clone.returncode:
        reason = (clone.stderr.strip() or "git failed").splitlines()[-1]
        raise InstallStopped(f"could not fetch the kit from {KIT_SOURCE}: {reason}")
if HOSTED:
    sys.path.insert(0, os.path.abspath("kit/scripts"))
    from hosted_install import install_kit

    install_kit()  # one line when done; stops the notebook with the reason when not
if os.path.exists("kit/helpers"):
    sys.path.insert(0, os.path.abspath("kit"))
