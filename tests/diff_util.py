"""Helpers of the `quarrel diff` tests (diff_cli_test.py, diff_cuda_test.py)."""
import json
import os
import subprocess
import sys

from engine_pyapi import FAILS


def run_diff(args, timeout=300):
    """`quarrel diff ARGS`: the completed process."""
    env = dict(os.environ, QUARREL_LOG_LEVEL='error')
    return subprocess.run([os.environ['QUARREL_BIN'], 'diff'] + args, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_diff_json(args, timeout=300):
    """`quarrel diff ARGS --json`: the process and its report (None when not JSON)."""
    r = run_diff(args + ['--json'], timeout)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, None


def finish():
    """Exits 1 after a summary when a check failed."""
    if FAILS:
        print('%d failure(s)' % len(FAILS))
        sys.exit(1)
    print('ok')
