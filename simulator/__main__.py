"""``python -m simulator``: the same as ``tikflow simulate``."""

import typer

from tikflow.simulate_cmd import simulate

if __name__ == "__main__":
    typer.run(simulate)
