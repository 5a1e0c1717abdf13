"""The Optuna study every verb works on: its storage, folders, claim lock, recorded settings and trials.

Search writes a study, export and evaluate read it; this package is what they share, so neither
imports the other to reach it.
"""
