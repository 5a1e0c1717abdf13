"""The hardware-constrained search: one trial (price, reject or train), the worker loop that claims
trials across threads, processes and machines, and what a run hands back (front table, trials.csv,
pareto.png). `python -m nas.search` is its CLI."""
