#!/usr/bin/env python3
"""Redis commands executed per API request (script bodies' commands included), from INFO
commandstats deltas over 100 requests of each kind on a private redis-server (needs
redis-server and redis-cli on the PATH).

usage: redis-commands-per-request.py <path to the vidq binary> <label> [batch]"""
import json, os, subprocess, sys, tempfile, time, urllib.request, socket

binary, label = sys.argv[1], sys.argv[2]
do_batch = len(sys.argv) > 3
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def cli(*args):
    return subprocess.run(["redis-cli", "-p", str(RPORT), *args], capture_output=True, text=True, check=True).stdout
def stats():
    out = {}
    for line in cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls = int(rest.split("calls=")[1].split(",")[0])
            out[name] = calls
    return out
def delta(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) - a.get(k, 0)}

RPORT = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(RPORT), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
for _ in range(100):
    try:
        cli("PING"); break
    except Exception:
        time.sleep(0.05)
port = free_port()
cfg = os.path.join(tempfile.mkdtemp(), "vidq.toml")
open(cfg, "w").write(f'''[redis]
url = "redis://127.0.0.1:{RPORT}"
prefix = "m"
[api]
listen = "127.0.0.1:{port}"
rate_per_second = 100000.0
rate_burst = 100000
[[api.tokens]]
name = "bench"
token = "bench-token-0123456789abcdef"
scopes = ["read", "write"]
''')
serve = subprocess.Popen([binary, "--config", cfg, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
for _ in range(200):
    try:
        urllib.request.urlopen(base + "/healthz"); break
    except Exception:
        time.sleep(0.05)
H = {"Authorization": "Bearer bench-token-0123456789abcdef", "Content-Type": "application/json"}
def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, headers=H, method=method)
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()
def job(n):
    return {"reference_video_url": f"https://videos.example.com/m-{n}.mp4", "model": 2000, "duration": 5, "reuse": False}
N = 100
results = {}
ids = []
def phase(name, fn):
    before = stats(); t = time.time()
    fn()
    after = stats()
    d = delta(before, after)
    d.pop("info", None)
    results[name] = {k: round(v / N, 2) for k, v in sorted(d.items())}
    results[name]["_total_per_request"] = round(sum(d.values()) / N, 2)
def posts():
    for n in range(N):
        s, b = req("POST", "/v1/jobs", job(n)); assert s == 202, (s, b); ids.append(b["id"])
phase("POST /v1/jobs", posts)
phase("GET /v1/jobs/{id}", lambda: [req("GET", f"/v1/jobs/{i}") for i in ids[:N]])
phase("GET /v1/jobs?limit=20", lambda: [req("GET", "/v1/jobs?limit=20") for _ in range(N)])
if do_batch:
    before = stats()
    s, b = req("POST", "/v1/jobs:batch", {"jobs": [job(1000 + n) for n in range(50)]})
    assert s == 200 and b["created"] == 50, (s, b)
    d = delta(before, stats()); d.pop("info", None)
    results["POST /v1/jobs:batch (50 jobs), commands for the whole batch"] = dict(sorted(d.items()))
print(json.dumps({label: results}, indent=1))
serve.terminate(); serve.wait()
redis.terminate(); redis.wait()
