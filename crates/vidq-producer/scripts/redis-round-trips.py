#!/usr/bin/env python3
"""The Redis round trips of one API request: the top-level commands (not those run inside a
script) that one POST /v1/jobs, or one POST /v1/jobs:batch of 10 jobs, sends, from MONITOR on a
private redis-server (needs redis-server and redis-cli on the PATH).

usage: redis-round-trips.py <path to the vidq binary> [batch]"""
import json, os, subprocess, sys, tempfile, time, urllib.request, socket
binary = sys.argv[1]; batch = len(sys.argv) > 2
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
RPORT = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(RPORT), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
time.sleep(0.3)
port = free_port()
cfg = os.path.join(tempfile.mkdtemp(), "vidq.toml")
open(cfg, "w").write(f'''[redis]
url = "redis://127.0.0.1:{RPORT}"
prefix = "m"
[api]
listen = "127.0.0.1:{port}"
[[api.tokens]]
name = "bench"
token = "bench-token-0123456789abcdef"
scopes = ["read", "write"]
''')
serve = subprocess.Popen([binary, "--config", cfg, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
for _ in range(200):
    try: urllib.request.urlopen(base + "/healthz"); break
    except Exception: time.sleep(0.05)
H = {"Authorization": "Bearer bench-token-0123456789abcdef", "Content-Type": "application/json"}
def post(path, body):
    urllib.request.urlopen(urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=H, method="POST")).read()
job = lambda n: {"reference_video_url": f"https://v.example.com/{n}.mp4", "model": 2000, "reuse": False}
post("/v1/jobs", job(0))  # warm: scripts loaded
mon = subprocess.Popen(["redis-cli", "-p", str(RPORT), "monitor"], stdout=subprocess.PIPE, text=True)
time.sleep(0.3)
if batch: post("/v1/jobs:batch", {"jobs": [job(n) for n in range(1, 11)]})
else: post("/v1/jobs", job(1))
time.sleep(0.5)
mon.terminate(); out = mon.communicate()[0]
top = [l for l in out.splitlines() if "[0 lua]" not in l and '"' in l and '"GET" "m:epoch"' not in l]
print(binary, "batch of 10" if batch else "one POST", ":", len(top), "top-level commands")
for l in top: print("   ", l.split("] ", 1)[1][:90])
serve.terminate(); serve.wait(); redis.terminate(); redis.wait()
