"""Malformed user files give one line naming the file, the key and what was expected: no traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.arch.space import SearchSpace
from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BUDGET = yaml.safe_load((ROOT / "budgets/stm32l476.yaml").read_text())
SPACE = yaml.safe_load((ROOT / "search_spaces/default.yaml").read_text())
ARCH = ROOT / "specs/thesis/stride-ds-24.yaml"


def run_cost(budget: Path, arch: Path = ARCH) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cost", "--budget", str(budget), "--arch", str(arch)],
                          capture_output=True, text=True, cwd=ROOT)


def with_change(data: dict, dotted: str, value) -> dict:
    import copy

    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


BAD_BUDGETS = [
    ("missing key", "limits.ram_bytes", KeyError, "limits.ram_bytes: missing key"),
    ("wrong type", "limits.flash_bytes", "lots", "limits.flash_bytes: expected an integer"),
    ("negative", "limits.ram_bytes", -64, "limits.ram_bytes: expected an integer > 0"),
    ("zero", "limits.macs_per_second", 0, "limits.macs_per_second: expected a number > 0"),
    ("absurd", "device.ram_bytes", 10**15, "device.ram_bytes: expected an integer"),
    ("unknown key", "limits.ram_kb", 64, "limits.ram_kb: unknown key"),
    ("bool for int", "target.clock_hz", True, "target.clock_hz: expected an integer"),
    ("wrong nesting", "target", "cortex-m4", "target: expected a mapping"),
    ("not a bool", "target.dsp", "yes please", "target.dsp: expected true or false"),
    ("over the device", "limits.ram_bytes", 262144, "exceeds device.ram_bytes"),
]


@pytest.mark.parametrize("label,key,value,message", BAD_BUDGETS, ids=[b[0] for b in BAD_BUDGETS])
def test_bad_budget_is_one_clear_line(tmp_path, label, key, value, message):
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(with_change(BUDGET, key, value)))
    result = run_cost(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(path) in lines[0] and message in lines[0], lines[0]


@pytest.mark.parametrize("content,message", [
    (b"", "file is empty"),
    (b"\x00\x01\x02binary", "not a text file"),
    (b"limits: [unclosed", "invalid YAML"),
    (b"- just\n- a list\n", "expected a mapping"),
    (b"\xff\xfe garbage", "not UTF-8"),
])
def test_unreadable_budget_files(tmp_path, content, message):
    path = tmp_path / "budget.yaml"
    path.write_bytes(content)
    result = run_cost(path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_missing_file_and_bad_arch(tmp_path):
    result = run_cost(tmp_path / "nope.yaml")
    assert result.returncode == 2 and "file not found" in result.stderr
    arch = yaml.safe_load(ARCH.read_text())
    arch["layers"][0].update(kernel=[33, 5], padding="valid")
    bad = tmp_path / "arch.yaml"
    bad.write_text(yaml.safe_dump(arch))
    result = run_cost(ROOT / "budgets/stm32l476.yaml", bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "layers[0] (conv2d): kernel 33x5 is larger than its input" in result.stderr


@pytest.mark.parametrize("key,value,message", [
    ("network.conv_type", ["standard", "fancy"], "network.conv_type[1]: expected one of standard, depthwise_separable"),
    ("network.blocks", [], "network.blocks: expected a non-empty list"),
    ("frontend.n_mels", [0, 40], "frontend.n_mels[0]: expected an integer >= 1"),
    ("network.pool", ["2by2"], "is not of the form TIMExMEL"),
    ("frontend.frames", KeyError, "frontend.frames: missing key"),
])
def test_bad_space(tmp_path, key, value, message):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(with_change(SPACE, key, value)))
    with pytest.raises(UserError) as err:
        SearchSpace.load(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_reference_outside_the_space_is_rejected(tmp_path):
    space = with_change(SPACE, "network.kernel", [3])
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(UserError, match=r"references\[0\] \(Stride-DS-24\): params.kernel = 5 is not among"):
        SearchSpace.load(path)


def test_shipped_budgets_load():
    names = {Budget.load(p).target.core for p in (ROOT / "budgets").glob("*.yaml")}
    assert len(list((ROOT / "budgets").glob("*.yaml"))) >= 5 and "cortex-m4" in names


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10))
def test_arbitrary_yaml_never_crashes_the_loaders(data):
    for cls in (Budget, SearchSpace, ArchSpec):
        try:
            from nas.core import config

            config.load(cls, data, "fuzz.yaml")
        except UserError as exc:
            assert str(exc).startswith("fuzz.yaml")
