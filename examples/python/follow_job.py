#!/usr/bin/env python3
"""Enqueue a video-to-video job through the vidq HTTP API, follow it to its end, download the video.

    python3 follow_job.py SOURCE_VIDEO_URL OUT_FILE      # VIDQ_API, VIDQ_TOKEN in the environment

It uses a client generated from the API's own OpenAPI document (CI runs this script against a
live API through scripts/check-clients):

    pip install openapi-python-client==0.29.1
    openapi-python-client generate --url "$VIDQ_API/openapi.json" --meta none --output-path vidq_client

Exit status 0 when the job succeeded and the downloaded bytes match the job's size and sha256.
"""

import hashlib
import os
import sys
import time
import uuid

import httpx
from vidq_client import AuthenticatedClient
from vidq_client.api.jobs import create, get, video
from vidq_client.models import CreateJob, JobView

TERMINAL = {"succeeded", "failed", "canceled", "expired"}


def main(source, out):
    api, token = os.environ["VIDQ_API"], os.environ["VIDQ_TOKEN"]
    # The video endpoint answers 302 to a presigned URL, fetched without the bearer token.
    client = AuthenticatedClient(base_url=api, token=token, follow_redirects=False, timeout=httpx.Timeout(30.0))

    # Enqueue. The Idempotency-Key makes a retried request return the same job.
    answer = create.sync_detailed(
        client=client,
        body=CreateJob(reference_video_url=source, model=2000, duration=5),
        idempotency_key=str(uuid.uuid4()),
    )
    if answer.status_code != 202 or not isinstance(answer.parsed, JobView):
        sys.exit(f"enqueue refused: HTTP {answer.status_code}: {answer.content!r}")
    job = answer.parsed
    print(f"enqueued {job.id} ({job.state.value})")

    # Follow: the job's state until it ends (the events endpoint streams the same as SSE).
    deadline = time.monotonic() + 120
    seen = job.state.value
    while job.state.value not in TERMINAL:
        if time.monotonic() > deadline:
            sys.exit(f"job {job.id} still {job.state.value} after 120 s")
        time.sleep(0.5)
        answer = get.sync_detailed(job.id, client=client)
        if not isinstance(answer.parsed, JobView):
            sys.exit(f"status refused: HTTP {answer.status_code}: {answer.content!r}")
        job = answer.parsed
        if job.state.value != seen:
            seen = job.state.value
            print(f"{job.id}: {seen}")
    if job.state.value != "succeeded":
        sys.exit(f"job {job.id} ended {job.state.value}: {job.error}")

    # Download: the API redirects to a short-lived presigned URL of the stored video.
    answer = video.sync_detailed(job.id, client=client)
    if answer.status_code != 302:
        sys.exit(f"video refused: HTTP {answer.status_code}: {answer.content!r}")
    body = httpx.get(answer.headers["location"], timeout=60).raise_for_status().content
    with open(out, "wb") as f:
        f.write(body)
    digest = hashlib.sha256(body).hexdigest()
    if len(body) != job.output.bytes_ or digest != job.output.sha256:
        sys.exit(f"downloaded {len(body)} bytes sha256 {digest}, the job says {job.output.bytes_} {job.output.sha256}")
    print(f"downloaded {len(body)} bytes to {out}, sha256 {digest} as the job says")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
