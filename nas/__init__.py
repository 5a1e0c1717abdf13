"""Hardware-constrained neural architecture search for sound classification on microcontrollers.

One folder per concept; ARCHITECTURE.md says what each owns and which it may import
(tests/test_layers.py checks it).
"""
