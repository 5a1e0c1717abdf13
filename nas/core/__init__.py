"""What every layer may use: one-line user errors, typed YAML loading, atomic writes, locks that die
with their holder."""
