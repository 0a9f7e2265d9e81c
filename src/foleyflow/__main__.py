from foleyflow.interfaces.cli import run

run()
