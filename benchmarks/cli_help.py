"""Start-up of every command: wall time of `<command> --help` against `python -c "import torch"`,
each the median of repeated runs in fresh processes, measured in the same run (issue 35's goal:
every --help within 1.5x of importing torch).

    python benchmarks/cli_help.py [--repeats 7] [--json benchmarks/results/cli_help.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from devtools.hardware import cpu_model  # noqa: E402


def median_wall(cmd: list[str], repeats: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args()
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    baseline = median_wall([sys.executable, "-c", "import torch"], args.repeats)
    rows = []
    for name, target in sorted(scripts.items()):
        module, function = target.split(":")
        code = f"import sys; sys.argv = ['{name}', '--help']; from {module} import {function}; {function}()"
        wall = median_wall([sys.executable, "-c", code], args.repeats)
        rows.append({"command": name, "help_s": round(wall, 3), "ratio": round(wall / baseline, 2)})
    print(f"import torch: {baseline:.2f} s (median of {args.repeats}, {cpu_model()})")
    for row in rows:
        print(f"{row['command'] + ' --help':32s} {row['help_s']:6.2f} s  {row['ratio']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "repeats": args.repeats, "import_torch_s": round(baseline, 3),
                       "commands": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
