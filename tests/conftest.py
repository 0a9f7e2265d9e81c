import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def cli(capsys):
    """Run the foleyflow CLI in-process: returns (exit_code, stdout, stderr)."""
    from foleyflow.interfaces.cli import main

    def run(*args: str):
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
