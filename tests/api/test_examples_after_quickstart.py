"""Each classification example is accepted as written by a service holding what the quickstart leaves.

The models are tiny stand-ins under the quickstart's names, and the tweets are a few rows at its paths;
the API reads model configs, files and columns, as it does for the real ones.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from app.cli.quickstart.specs import BASE_MODEL, SPLITS, TEACHER_MODEL
from distillery.cli.local_files import upload_local_files
from distillery.cli.spec_file import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "distillery" / "examples"
CLASSIFIERS = [
    path
    for path in sorted(EXAMPLES.glob("*.yaml"))
    if yaml.safe_load(path.read_text())["task"] == "sequence_classification"
]


@pytest.fixture
def quickstart_leftovers(model_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quickstart's two models under the model root, and its splits under ./var/quickstart."""
    teacher = save_tiny_bert_classifier(model_root / TEACHER_MODEL, layers=6)
    base = model_root / BASE_MODEL
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(teacher, base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "architectures": ["BertModel"]}))
    monkeypatch.chdir(tmp_path)
    work = Path("var/quickstart")
    work.mkdir(parents=True)
    for seed, split in enumerate(SPLITS):
        (work / f"tweets-{split}.jsonl").write_bytes(jsonl_bytes(sentiment_rows(12, seed=seed)))


@pytest.mark.usefixtures("quickstart_leftovers")
@pytest.mark.parametrize("path", CLASSIFIERS, ids=[path.stem for path in CLASSIFIERS])
def test_each_classification_example_is_accepted_after_the_quickstart(client: Any, path: Path) -> None:
    spec = load_spec(path)

    uploads = upload_local_files(spec, lambda local: upload(client, local))
    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 201, response.text
    assert {item.field for item in uploads} == {"data.train_file", "data.eval_file", "data.test_file"}


SWEEPS = [
    path
    for path in sorted((EXAMPLES / "sweeps").glob("*.yaml"))
    if yaml.safe_load(path.read_text())["base"]["task"] == "sequence_classification"
]


@pytest.mark.usefixtures("quickstart_leftovers")
@pytest.mark.parametrize("path", SWEEPS, ids=[path.stem for path in SWEEPS])
def test_each_classifier_sweep_is_accepted_after_the_quickstart(client: Any, path: Path) -> None:
    spec = load_spec(path)

    upload_local_files(spec["base"], lambda local: upload(client, local))
    response = client.post("/v1/sweeps", json=spec)

    assert response.status_code == 201, response.text


def upload(client: Any, local: Path) -> dict[str, Any]:
    """Upload a local file through the API; its file object."""
    response = client.post("/v1/files", files={"file": (local.name, local.read_bytes())})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_examples_cover_every_model_the_quickstart_leaves() -> None:
    named = {ref["path"] for path in CLASSIFIERS for ref in model_paths(yaml.safe_load(path.read_text()))}
    assert named == {BASE_MODEL, TEACHER_MODEL}


def model_paths(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [ref for ref in (spec.get("teacher"), (spec.get("student") or {}).get("model")) if ref]


@pytest.mark.usefixtures("quickstart_leftovers")
def test_an_example_posted_with_its_local_paths_is_422_saying_to_upload_them(client: Any) -> None:
    response = client.post("/v1/jobs", json=load_spec(EXAMPLES / "response.yaml"))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "data.train_file"
    assert "named by the id (file_...) that POST /v1/files returned" in error["message"]
