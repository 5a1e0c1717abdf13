"""Data path: UrbanSound8K loading (`urbansound`), a synthetic stand-in (`synth`), the device-exact
log-mel front-end (`frontend`) and the on-disk feature cache (`cache`).

Importing this package imports nothing heavy; torch is loaded by `frontend` and `cache` on use.
"""
