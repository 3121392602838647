"""Every example under distillery/examples/ is a valid job spec, and every method has one."""

from pathlib import Path

import pytest
import yaml

from distillery.jobspec import JobSpec
from distillery.jobspec.methods import METHOD_CLASSES

EXAMPLES = Path(__file__).resolve().parents[2] / "distillery" / "examples"
SPECS = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[path.stem for path in SPECS])
def test_example_is_a_valid_job_spec(path):
    spec = JobSpec.model_validate(yaml.safe_load(path.read_text()))
    for ref in spec.model_refs():
        assert ref.path is not None and not ref.path.startswith("/")
    # A local path, which `distillery submit` uploads; never an id of a file that cannot exist.
    assert not spec.data.train_file.startswith("file")


def test_every_method_has_an_example():
    methods = {JobSpec.model_validate(yaml.safe_load(path.read_text())).method.type for path in SPECS}
    assert methods == {spec_class.type_name() for spec_class in METHOD_CLASSES}
    tasks = {JobSpec.model_validate(yaml.safe_load(path.read_text())).task for path in SPECS}
    assert tasks == {"sequence_classification", "causal_lm"}
