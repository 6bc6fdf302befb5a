"""Prints one line per job (from `vidq status --json` on stdin, one document per line) and
checks each stored video's sha256 against the file s3s-fs keeps under ROOT/bucket/key.
Exits 1 when any job did not succeed or any file does not match."""
import hashlib
import json
import os
import sys

root = sys.argv[1]
ok = True
print(f"{'JOB':36}  {'STATE':9}  {'WHERE':60}  {'BYTES':>9}  SHA256 (checked against the stored file)")
for line in sys.stdin:
    if not line.strip():
        continue
    job = json.loads(line)
    out = job.get("output")
    if not out:
        ok = False
        print(f"{job['id']:36}  {job['state']:9}  {job.get('error') or '-'}")
        continue
    digest = hashlib.sha256()
    with open(os.path.join(root, out["bucket"], out["key"]), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    match = digest.hexdigest() == out["sha256"]
    ok = ok and match and job["state"] == "succeeded"
    where = f"s3://{out['bucket']}/{out['key']}"
    verdict = "matches" if match else "MISMATCH"
    print(f"{job['id']:36}  {job['state']:9}  {where:60}  {out['bytes']:>9}  {out['sha256'][:16]}… {verdict}")
sys.exit(0 if ok else 1)
