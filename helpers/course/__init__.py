"""What a notebook opens with, and the course's housekeeping.

``setup`` (:func:`~helpers.course.setup.setup_notebook`), ``continuation`` (opening the course
home: Drive on Colab, earlier notebooks' saved homes on Kaggle), ``quiet`` (library noise
filtered; executed notebooks checked for it), ``uploads`` (the learner's own photos), ``widgets``
(the notebooks' controls), ``doctor`` (is this install sound?), ``budget`` (the disk each
notebook needs), ``cleanup`` (what in the course home may be deleted).
"""
