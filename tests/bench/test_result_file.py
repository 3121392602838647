"""The one result writer of the benchmarks: indented JSON in a folder it makes, and a line saying where."""

import json

from rich.console import Console

from bench.paths import RESULTS, ROOT
from bench.result_file import write_result


def test_a_result_is_written_as_indented_json_and_its_path_printed(tmp_path):
    out = tmp_path / "new" / "figures.json"
    console = Console(record=True, width=200)

    write_result({"benchmark": "x", "seconds": 1.5}, out, console=console)

    assert json.loads(out.read_text()) == {"benchmark": "x", "seconds": 1.5}
    assert out.read_text().endswith("}\n") and '\n  "seconds"' in out.read_text()
    assert f"Wrote {out}" in console.export_text()


def test_results_go_under_bench_results_of_the_checkout():
    assert RESULTS == ROOT / "bench" / "results" and (ROOT / "pyproject.toml").is_file()
