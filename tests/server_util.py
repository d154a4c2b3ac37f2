"""Helpers for the `quarrel serve` tests: start a server on a free port (it binds port 0 and
prints the port it got), raw HTTP requests, Prometheus metric parsing. Not a test itself
(no _test suffix)."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_pyapi import skip  # noqa: E402,F401

FAILS = []


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def finish(name):
    if FAILS:
        print(f'{name}: {len(FAILS)} failures:\n  ' + '\n  '.join(FAILS))
        sys.exit(1)
    print(f'{name}: ok')
    sys.exit(0)


class Server:
    """A `quarrel serve` child process on 127.0.0.1 and a port the kernel picked. device:
    its --device; the CPU unless a test asks for CUDA, since the CPU tests compare with
    llama.cpp's CPU outputs and `auto` would pick a GPU where there is one."""

    def __init__(self, model, *args, bin_path=None, env=None, startup_s=120, device='cpu'):
        cmd = [bin_path or os.environ['QUARREL_BIN'], 'serve', '-m', model, '--port', '0', '-t', '2',
               '--device', device] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, QUARREL_LOG_LEVEL='warn', **(env or {})))
        self.stderr_lines = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        line = self._read_banner(startup_s)
        self.banner = line or ''
        m = re.search(r'listening on http://127\.0\.0\.1:(\d+)', line or '')
        if not m:
            self.proc.kill()
            raise RuntimeError(f'server did not start: {line!r}\n' + ''.join(self.stderr_lines))
        self.port = int(m.group(1))
        self.base = f'http://127.0.0.1:{self.port}'

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line.decode('utf-8', 'replace'))

    def _read_banner(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline().decode()))
        t.start()
        t.join(timeout)
        return out[0] if out else None

    def request(self, method, path, body=None, headers=None, raw=None, timeout=120):
        """(status, headers dict, body text) of one request on a fresh connection."""
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {'Content-Type': 'application/json'}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode('utf-8', 'replace')
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, text

    def metrics(self, headers=None):
        status, _, text = self.request('GET', '/metrics', headers=headers)
        values = {}
        for line in text.splitlines():
            if line and not line.startswith('#'):
                name, value = line.rsplit(' ', 1)
                values[name] = float(value)
        return values

    def stop(self):
        """SIGTERM, then the exit code (the server exits 0 after a clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def raw_socket(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=30)
    return s


def post_raw(port, path, body, headers=''):
    """Sends a POST on a raw socket and returns the socket (for disconnect tests)."""
    s = raw_socket(port)
    data = json.dumps(body).encode()
    s.sendall(f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}'
              f'Content-Length: {len(data)}\r\n\r\n'.encode() + data)
    return s


def error_body(text):
    """The 'error' object of an OpenAI-shaped error body, or None."""
    try:
        e = json.loads(text).get('error')
    except (ValueError, AttributeError):
        return None
    if isinstance(e, dict) and isinstance(e.get('message'), str) and 'type' in e and 'code' in e and 'param' in e:
        return e
    return None


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
