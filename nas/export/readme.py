"""README.md of an exported model folder: what is in it, how to build it, how to call it, its cost."""
from __future__ import annotations

from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.export.api import Api
from nas.quant.quantize import QuantizedModel
from nas.export.render import render


def readme(qm: QuantizedModel, cost: costmodel.Cost, budget: Budget, report: dict, api: Api = Api()) -> str:
    """`templates/README.md.j2` for `qm`; `report` is what report.json holds (measurements as far as made)."""
    return render("README.md.j2", spec=qm.spec, iq=qm.input_quant, class_names=qm.class_names,
                  input_scale=qm.input_scale, input_zero_point=qm.input_zero_point, cost=cost, budget=budget,
                  report=report, api=api, cost_table=costmodel.report(qm.spec, budget, cost))
