"""Every example under distillery/examples/sweeps/ is a valid sweep spec; one uses a preset, one a space."""

from pathlib import Path

import pytest
import yaml

from distillery.cli.sweeps import load_sweep_spec
from distillery.jobspec.sweep import Range, SweepSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "distillery" / "examples" / "sweeps"
SPECS = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[path.stem for path in SPECS])
def test_example_is_a_valid_sweep_spec(path: Path) -> None:
    spec = SweepSpec.model_validate(yaml.safe_load(path.read_text()))

    # Local paths, which `distillery sweep submit` uploads; never ids of files that cannot exist.
    assert not spec.base.data.train_file.startswith("file")
    assert spec.base.data.test_file is not None and not spec.base.data.test_file.startswith("file")


def test_the_examples_show_a_preset_and_an_explicit_space() -> None:
    searches = [yaml.safe_load(path.read_text())["search"] for path in SPECS]

    assert any(isinstance(search, str) and search.startswith("preset:") for search in searches)
    assert any(isinstance(search, dict) for search in searches)


def test_set_overrides_reach_one_end_of_one_dotted_dimension() -> None:
    path = EXAMPLES / "response_classifier_search.yaml"

    spec = load_sweep_spec(path, ["search.method.alpha.high=0.8", "search.training.epochs=[2, 3]"])

    space = SweepSpec.model_validate(spec).space()
    assert space["method.alpha"] == Range(low=0.1, high=0.8)
    assert space["training.epochs"] == [2, 3]
