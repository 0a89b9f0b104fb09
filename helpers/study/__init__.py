"""The study: the experiments re-run on ToyWorld, judged over seeds, and the README's table.

``arms`` (every experiment's values, declared once), ``findings`` (each experiment trained and
scored), ``verdicts`` (a finding over several training seeds), ``findings_table`` (a profile's
column of the README's findings table).
"""
