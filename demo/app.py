"""The tta Gradio demo: ``python demo/app.py [--host H] [--port N] [--model PATH]`` (same as ``tta demo``).

The page is built by :func:`tta.demo.app.build_demo`; everything it runs goes through ``TTAPipeline``.
"""

import sys

from tta.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
