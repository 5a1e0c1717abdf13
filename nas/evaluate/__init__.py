"""Final evaluation of a study's models with the thesis protocol (10 predefined folds);
`python -m nas.evaluate` is its CLI."""
