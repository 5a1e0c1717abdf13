"""Cost models: what an `ArchSpec` costs on a budget's microcontroller, computed before any training.

`analytic`: exact int8 RAM, FLASH and MACs under CMSIS-NN (the contract with the C exporter).
"""
