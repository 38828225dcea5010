"""The thin typer CLI over the library API."""
