"""One name per number, the same in every output (terminal, CSVs, the dashboard's metric names and
notes, plots), and what each is in one line. A trial has two validation figures:

* `val_score` ranks models: the search maximises it, the front and the recommendation are made of it;
* `val_accuracy` is the plain share of validation clips classified correctly.

They differ when the validation folds' class mix differs from the training folds' (the default
`prior` selection metric corrects for it) and by the smoothing over epochs.
"""
from __future__ import annotations

VAL_SCORE = "val_score"
VAL_ACCURACY = "val_accuracy"

DEFINITIONS = {
    VAL_SCORE: "the selection score the search maximises: the recipe's selection_metric on the validation folds "
               "(default prior: clip accuracy with the classes weighted as in the training folds), smoothed over "
               "3 epochs at the kept epoch, mean over the trial's training runs",
    VAL_ACCURACY: "the share of validation clips classified correctly by the kept epoch's weights, mean over the runs "
                  "(per epoch in the learning curves)",
}


def legend(*names: str) -> str:
    """`name: definition` for each of `names`, one line."""
    return "; ".join(f"{n}: {DEFINITIONS[n]}" for n in names)
