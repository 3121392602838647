"""`distillery files`: upload datasets and list them."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from distillery.cli.console import format_age, say, stdout
from distillery.cli.state import client_of

app = typer.Typer(help="Upload and list datasets (JSONL, CSV or Parquet).", no_args_is_help=True)


@app.command()
def upload(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The dataset file.")
    ],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the id alone (the default when piped).")
    ] = False,
) -> None:
    """Upload a dataset; prints its id for the spec's data.train_file."""
    uploaded = client_of(ctx).upload_file(path)
    out = stdout()
    if quiet or not out.is_terminal:
        # Alone on its line, so `FILE=$(distillery files upload tweets.jsonl)` holds the id.
        typer.echo(uploaded["id"])
        return
    rows = uploaded.get("rows")
    shape = f", {rows} rows" if rows is not None else ""
    say(out, f"Uploaded {uploaded.get('filename', path.name)}{shape}: {uploaded['id']}")


@app.command("list")
def list_files(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="Files to show.")] = 20,
    after: Annotated[str | None, typer.Option("--after", help="Show the files after this id.")] = None,
) -> None:
    """List uploaded files, newest first."""
    page = client_of(ctx).list_files(limit=limit, after=after)
    out = stdout()
    out.print(files_table(page.get("data", [])))
    if page.get("has_more"):
        say(out, f"More: distillery files list --after {page.get('last_id')}", style="dim")


def files_table(files: list[dict[str, Any]]) -> Table:
    """A table of files: id, name, format, rows, size, created."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True)
    table.add_column("FILENAME", overflow="fold")
    table.add_column("FORMAT", no_wrap=True)
    table.add_column("ROWS", justify="right", no_wrap=True)
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    for item in files:
        rows = item.get("rows")
        table.add_row(
            item["id"],
            str(item.get("filename", "")),
            str(item.get("format", "")),
            "-" if rows is None else str(rows),
            format_bytes(item.get("bytes")),
            format_age(item.get("created_at")),
        )
    return table


def format_bytes(size: int | None) -> str:
    """A byte count as '512 B', '1.5 KiB', '3.2 MiB'."""
    if size is None:
        return "-"
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {units[unit]}"
