"""Every input is bounded: control characters, lengths, non-finite numbers, seeds, student configs and
body sizes are refused with a 4xx naming the field, and the connection stays usable afterwards."""

import json
from typing import Any

import pytest

NUL = "a\x00b"


def post_raw(client: Any, body: str | bytes, **headers: str) -> Any:
    """POST a job body exactly as given (json= would refuse or re-encode what these tests send)."""
    return client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json", **headers})


def assert_invalid(response: Any, param: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "user"), error


def with_field(spec: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of the spec with one dotted field set."""
    body = json.loads(json.dumps(spec))
    *parents, last = dotted.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return body


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("name", NUL, "name"),
        ("name", "tab\tinside", "name"),
        ("teacher.path", NUL, "teacher.path"),
        ("teacher.path", "m" * 256, "teacher.path"),
        ("teacher.path", "\u00e9" * 255, "teacher.path"),
        ("data.train_file", NUL, "data.train_file"),
        ("data.train_file", "file_" + "0" * 100, "data.train_file"),
        ("data.eval_file", "\x7f", "data.eval_file"),
        ("data.text_column", NUL, "data.text_column"),
        ("data.label_column", "x" * 300, "data.label_column"),
        ("student.model", {"job": NUL}, "student.model.job"),
        ("metadata", {"team": NUL}, "metadata.team"),
        ("metadata", {"te\x00am": "x"}, "metadata"),
    ],
)
def test_control_characters_and_overlong_text_are_422_on_the_field(
    client: Any, job_spec: dict[str, Any], field: str, value: Any, param: str
) -> None:
    assert_invalid(client.post("/v1/jobs", json=with_field(job_spec, field, value)), param)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/jobs/job_a%00b", "job_id"),
        ("/v1/jobs/job_a%01b/events", "job_id"),
        ("/v1/files/file_%00", "file_id"),
        ("/v1/jobs/job_x/artifacts/student%00.tar.gz", "name"),
        ("/v1/jobs?after=job_%00", "after"),
        ("/v1/files?after=" + "f" * 101, "after"),
    ],
)
def test_control_characters_in_path_and_query_are_422(client: Any, path: str, param: str) -> None:
    assert_invalid(client.get(path), param)


def test_a_control_character_in_the_idempotency_key_is_422(client: Any, job_spec: dict[str, Any]) -> None:
    response = client.post("/v1/jobs", json=job_spec, headers={"Idempotency-Key": "key\x01"})
    assert_invalid(response, "Idempotency-Key")


def test_a_nul_in_an_upload_purpose_is_422(client: Any) -> None:
    files = {"file": ("d.jsonl", b'{"text": "a", "label": 1}\n')}
    assert_invalid(client.post("/v1/files", files=files, data={"purpose": NUL}), "purpose")


@pytest.mark.parametrize("number", ["1e309", "-1e309", "Infinity", "NaN"])
def test_non_finite_numbers_are_422(client: Any, job_spec: dict[str, Any], number: str) -> None:
    body = json.dumps(with_field(job_spec, "training.max_grad_norm", 12345.5)).replace("12345.5", number)
    assert_invalid(post_raw(client, body), "training.max_grad_norm")


@pytest.mark.parametrize(("seed", "status"), [(2**32 - 1, 201), (2**32, 422), (-1, 422)])
def test_seeds_are_those_python_numpy_and_torch_accept(
    client: Any, job_spec: dict[str, Any], seed: int, status: int
) -> None:
    response = client.post("/v1/jobs", json=with_field(job_spec, "training.seed", seed))
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["error"]["param"] == "training.seed"


def config_spec(job_spec: dict[str, Any], config: Any) -> dict[str, Any]:
    return with_field(job_spec, "student", {"init": "config", "config": config})


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"num_attention_heads": 0}, "student.config.num_attention_heads"),
        ({"hidden_size": -5}, "student.config.hidden_size"),
        ({"vocab_size": "abc"}, "student.config.vocab_size"),
        ({"num_hidden_layers": True}, "student.config.num_hidden_layers"),
        ({"num_hidden_layers": 2.5}, "student.config.num_hidden_layers"),
        ({"n_layer": 10_000}, "student.config.n_layer"),
        ({"hidden_dropout_prob": 1.5}, "student.config.hidden_dropout_prob"),
        ({"layer_norm_eps": 0}, "student.config.layer_norm_eps"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "student.config.hidden_size"),
        ({"n_embd": 30, "n_head": 4}, "student.config.n_embd"),
        ({"rope_scaling": {"a": {"b": {"c": {"d": 1}}}}}, "student.config.rope_scaling.a.b.c"),
        ({"label\x00": 1}, "student.config"),
        ({"rope_scaling": {"ty\x00pe": "linear"}}, "student.config.rope_scaling"),
        ({"hidden_act": "gelu\x00"}, "student.config.hidden_act"),
    ],
)
def test_a_bad_student_config_is_422_on_its_key(
    client: Any, job_spec: dict[str, Any], config: dict[str, Any], param: str
) -> None:
    assert_invalid(client.post("/v1/jobs", json=config_spec(job_spec, config)), param)


def test_a_non_finite_number_deep_in_the_config_is_422(client: Any, job_spec: dict[str, Any]) -> None:
    body = json.dumps(config_spec(job_spec, {"rope_scaling": {"factor": 12345.5}}))
    response = post_raw(client, body.replace("12345.5", "1e309"))
    assert_invalid(response, "student.config.rope_scaling.factor")


@pytest.mark.parametrize(
    "config",
    [
        {f"key_{index}": index for index in range(300)},
        {"architectures": ["x" * 1000] * 20},
        {"nested": json.loads('{"a":' * 400 + "1" + "}" * 400)},
    ],
    ids=["too-many-keys", "too-large", "too-deep"],
)
def test_an_oversized_config_is_422_before_it_is_stored(
    client: Any, job_spec: dict[str, Any], config: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json=config_spec(job_spec, config))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"].startswith("student.config")
    assert client.get("/v1/jobs").json()["data"] == []


def test_a_sound_config_is_accepted_as_given(client: Any, job_spec: dict[str, Any]) -> None:
    config = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "classifier_dropout": None}
    response = client.post("/v1/jobs", json=config_spec(job_spec, config))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["student"]["config"] == config


def test_a_json_body_over_the_limit_is_413_at_once(make_client: Any, settings: Any) -> None:
    small = make_client(api_key=settings.dev_api_key, max_request_bytes=2000)
    response = small.post("/v1/jobs", json={"name": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "request_too_large",
        "message": "the request body is larger than the limit of 2000 bytes",
        "param": None,
        "type": "user",
    }


def test_a_chunked_json_body_over_the_limit_is_cut_off(make_client: Any, settings: Any) -> None:
    small = make_client(api_key=settings.dev_api_key, max_request_bytes=2000)

    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = small.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_the_request_limit_leaves_uploads_to_their_own(make_client: Any, settings: Any) -> None:
    small = make_client(api_key=settings.dev_api_key, max_request_bytes=2000)
    rows = b"".join(b'{"text": "%s", "label": 1}\n' % (b"x" * 100) for _ in range(50))
    response = small.post("/v1/files", files={"file": ("d.jsonl", rows)})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("body", [b'{"name": "\xff"}', b"[" * 100_000], ids=["invalid-utf8", "deeply-nested"])
def test_a_body_that_cannot_be_parsed_is_a_documented_400(client: Any, body: bytes) -> None:
    response = post_raw(client, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "user"
    documented = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["responses"]
    assert "400" in documented and "413" in documented


@pytest.mark.parametrize("after", [2**31 - 1, 2**31, 10**20])
def test_an_event_cursor_is_bounded_by_what_the_database_stores(
    client: Any, create_job: Any, after: int
) -> None:
    job = create_job()
    response = client.get(f"/v1/jobs/{job['id']}/events", params={"after": after})
    if after < 2**31:
        assert response.status_code == 200 and response.json()["data"] == []
    else:
        assert_invalid(response, "after")


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/jobs?limt=5", "limt"),
        ("/v1/jobs/job_1/events?aftr=3", "aftr"),
        ("/v1/files?a%00=1", "query"),
    ],
)
def test_an_unknown_query_parameter_is_422_naming_it(client: Any, path: str, param: str) -> None:
    response = client.get(path)
    assert_invalid(response, param)
    assert response.json()["error"]["code"] == "unknown_field"


def test_declared_query_parameters_still_pass(client: Any, create_job: Any) -> None:
    job = create_job()
    assert client.get("/v1/jobs", params={"limit": 5, "status": "queued"}).status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}/events", params={"after": 0, "limit": 5}).status_code == 200
