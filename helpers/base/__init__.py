"""The ground floor, which every other layer may use: where things live, and counting.

``home`` (the course home on Colab, Kaggle or a laptop, free space), ``paths`` (the kit's data
folders and the runs folder), ``storage`` (where a run's weights live; keep or release them),
``stats`` (shares, means and their 95% intervals).
"""
