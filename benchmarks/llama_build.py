"""llama.cpp's generation speed with two builds of llama-cpp-python, on this machine.

lspilot builds llama.cpp portably (server/lspilot/local/build.py: x86-64-v3, no native
tuning) so that the wheel runs on every x86-64 machine it is installed on. This measures
what that costs against a native (``-march=native``) build: the same model, prompt and
settings through each build's Python, interleaved, a few rounds each.

    python -m benchmarks.llama_build --model M.gguf --python A/bin/python --python B/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

# Run inside each build's Python: load once, then time prompt processing and generation.
_PROBE = r"""
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]), verbose=False,
            seed=1)
prompt = "def fibonacci(n):\n    " + "# compute the nth Fibonacci number\n    " * 20
rounds = []
for _ in range(int(sys.argv[3])):
    llm.reset()
    started = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=128, temperature=0.0)
    elapsed = time.perf_counter() - started
    usage = out["usage"]
    rounds.append({"seconds": elapsed, "prompt_tokens": usage["prompt_tokens"],
                   "completion_tokens": usage["completion_tokens"]})
print(json.dumps(rounds))
"""


def measure(python: str, model: str, threads: int, rounds: int) -> list[dict[str, float]]:
    done = subprocess.run([python, "-c", _PROBE, model, str(threads), str(rounds)],
                          capture_output=True, text=True, check=True)
    result: list[dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--python", action="append", required=True, help="a build's python")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved passes per build")
    args = parser.parse_args()
    speeds: dict[str, list[float]] = {p: [] for p in args.python}
    for _ in range(args.repeat):
        for python in args.python:  # interleaved: a busy moment hits both builds alike
            for r in measure(python, args.model, args.threads, args.rounds):
                speeds[python].append(r["completion_tokens"] / r["seconds"])
    for python, values in speeds.items():
        print(f"{python}: {statistics.median(values):.1f} tokens/s (median of {len(values)}; "
              f"min {min(values):.1f}, max {max(values):.1f}; prompt + 128 tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
