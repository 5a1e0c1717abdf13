"""The external C names of one exported model, so several models link into one firmware.

The default name `model` gives the historical API: `nas_model_invoke`, `NAS_MODEL_*`,
`nas_frontend_push`, `NAS_FRONTEND_*`. Any other name `kws` prefixes every external symbol, macro,
include guard and build target of the model and of its front-end: `nas_kws_invoke`,
`NAS_KWS_NUM_CLASSES`, `nas_kws_frontend_push`, `libnas_kws.a`. Internal arrays are `static`
and keep their names (`nas_w_<layer>_*`, the arena), so they never collide.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from nas.core.errors import UserError

DEFAULT = "model"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def c_name(text: str) -> str:
    """A model name as an API name: `Stride-DS-24` → `stride_ds_24`."""
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return name if name[:1].isalpha() else f"m_{name}"


@dataclass(frozen=True)
class Api:
    name: str = DEFAULT

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise UserError(f"--prefix {self.name}: expected a C name of lowercase letters, digits and '_' "
                            f"starting with a letter (at most 32), e.g. kws")

    @property
    def model(self) -> str:
        return f"nas_{self.name}"

    @property
    def MODEL(self) -> str:  # noqa: N802 (the macro spelling)
        return self.model.upper()

    @property
    def frontend(self) -> str:
        return "nas_frontend" if self.name == DEFAULT else f"nas_{self.name}_frontend"

    @property
    def FRONTEND(self) -> str:  # noqa: N802
        return self.frontend.upper()

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT
