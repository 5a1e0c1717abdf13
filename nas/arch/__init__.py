"""The architecture as plain data and what it determines: `ArchSpec` (front-end settings + layers),
the search space that samples specs, the front-end's exact computation (window, mel tables, log-mel)
and the torch network a spec builds."""
