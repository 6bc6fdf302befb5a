#!/usr/bin/env python3
"""Two `vidq serve` replicas on one private redis-server, one token allowed 10 requests/s with
a burst of 5: GET /v1/jobs back to back, alternating replicas, for 5 s; prints how many were
admitted against what one token's setting allows (needs redis-server on the PATH).

usage: rate-two-replicas.py <path to the vidq binary>"""
import os, subprocess, sys, tempfile, time, urllib.request, socket
binary = sys.argv[1]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
RPORT = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(RPORT), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
time.sleep(0.3)
procs, bases = [], []
work = tempfile.mkdtemp()
for i in range(2):
    port = free_port()
    cfg = os.path.join(work, f"replica{i}.toml")
    open(cfg, "w").write(f'''[redis]
url = "redis://127.0.0.1:{RPORT}"
prefix = "r"
[api]
listen = "127.0.0.1:{port}"
rate_per_second = 10.0
rate_burst = 5
[[api.tokens]]
name = "bench"
token = "bench-token-0123456789abcdef"
scopes = ["read", "write"]
''')
    procs.append(subprocess.Popen([binary, "--config", cfg, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    bases.append(f"http://127.0.0.1:{port}")
for b in bases:
    for _ in range(200):
        try:
            urllib.request.urlopen(b + "/healthz"); break
        except Exception:
            time.sleep(0.05)
ok = total = 0
start = time.time()
while time.time() - start < 5.0:
    r = urllib.request.Request(bases[total % 2] + "/v1/jobs", headers={"Authorization": "Bearer bench-token-0123456789abcdef"})
    total += 1
    try:
        urllib.request.urlopen(r); ok += 1
    except urllib.error.HTTPError as e:
        assert e.code == 429, e.code
elapsed = time.time() - start
print(f"{binary}: {ok} of {total} admitted in {elapsed:.2f}s; one token's setting allows {5 + 10 * elapsed:.0f}")
for p in procs: p.terminate(); p.wait()
redis.terminate(); redis.wait()
