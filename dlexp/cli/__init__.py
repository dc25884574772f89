"""The front door for the shell: the `dlexp` console script (entry), its typer app (app) and `dlexp list`."""
