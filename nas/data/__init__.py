"""Data path: UrbanSound8K loading (`urbansound`), a synthetic stand-in (`synth`) and the on-disk
feature cache (`cache`) of the log-mel features `nas.arch.frontend` computes.

Importing this package imports nothing heavy; torch is loaded by `cache` on use.
"""
