from tta.cli import run

run()
