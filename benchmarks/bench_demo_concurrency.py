"""The demo under load: wall time of N generate requests submitted at once, against one request alone.

Serves the shipped model (or ``--model``) with ``tta.demo.app.launch`` on a free localhost port, concurrency
``--concurrency``, and drives it through ``gradio_client`` as a browser would. Prints the time of one request
(median of ``--repeats``), of N submitted together, and their ratio: below N means requests really run side by
side (before the core kept the retrieval index as pipeline state, a global lock ran generations one at a time).

    .venv/bin/python benchmarks/bench_demo_concurrency.py                 # 4 requests of 5 s audio
    .venv/bin/python benchmarks/bench_demo_concurrency.py --requests 8 --concurrency 8
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    from tta.demo.app import launch
    from tta.paths import default_model_dir

    port = free_port()
    demo = launch(
        port=port, model=args.model or str(default_model_dir()), concurrency_limit=args.concurrency, block=False
    )
    client = Client(f"http://127.0.0.1:{port}", verbose=False)

    def request(seed: int):  # model, prompt, negative, duration, steps, guidance, seed, candidates, index, top-k
        return client.submit(
            None, "dog barking in rain", "", args.duration, 12, 6.0, seed, 1, False, 0, api_name="/generate"
        )

    try:
        request(0).result()  # warm-up
        alone = []
        for r in range(args.repeats):
            start = time.perf_counter()
            request(100 + r).result()
            alone.append(time.perf_counter() - start)
        one = statistics.median(alone)
        start = time.perf_counter()
        jobs = [request(200 + i) for i in range(args.requests)]
        for job in jobs:
            job.result()
        together = time.perf_counter() - start
    finally:
        demo.close()
    n = args.requests
    print(f"| requests | one alone (s) | {n} at once (s) | ratio | {n} x one |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {n} | {one:.2f} | {together:.2f} | {together / one:.2f} | {n:.2f} |")


if __name__ == "__main__":
    main()
