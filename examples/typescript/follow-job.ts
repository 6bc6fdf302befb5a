// Enqueue a video-to-video job through the vidq HTTP API, follow it to its end, download the video.
//
//   node dist/follow-job.js SOURCE_VIDEO_URL OUT_FILE      # VIDQ_API, VIDQ_TOKEN in the environment
//
// The types come from the API's own OpenAPI document and the calls go through openapi-fetch
// (CI runs this against a live API through scripts/check-clients):
//
//   npm ci
//   npx openapi-typescript "$VIDQ_API/openapi.json" -o vidq-api.d.ts
//   npx tsc -p tsconfig.json
//
// Exit status 0 when the job succeeded and the downloaded bytes match the job's size and sha256.
import { createHash, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { paths, components } from "./vidq-api.js";

type Job = components["schemas"]["JobView"];
const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function main(source: string, out: string): Promise<void> {
  const api = process.env.VIDQ_API ?? fail("VIDQ_API is not set");
  const token = process.env.VIDQ_TOKEN ?? fail("VIDQ_TOKEN is not set");
  const client = createClient<paths>({
    baseUrl: api,
    headers: { Authorization: `Bearer ${token}` },
  });

  // Enqueue. The Idempotency-Key makes a retried request return the same job.
  const created = await client.POST("/v1/jobs", {
    params: { header: { "Idempotency-Key": randomUUID() } },
    body: { reference_video_url: source, model: 2000, duration: 5 },
  });
  if (!created.data) fail(`enqueue refused: HTTP ${created.response.status}: ${JSON.stringify(created.error)}`);
  let job: Job = created.data;
  console.log(`enqueued ${job.id} (${job.state})`);

  // Follow: the job's state until it ends (the events endpoint streams the same as SSE).
  const deadline = Date.now() + 120_000;
  let seen = job.state;
  while (!TERMINAL.has(job.state)) {
    if (Date.now() > deadline) fail(`job ${job.id} still ${job.state} after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const answer = await client.GET("/v1/jobs/{id}", { params: { path: { id: job.id } } });
    if (!answer.data) fail(`status refused: HTTP ${answer.response.status}`);
    job = answer.data;
    if (job.state !== seen) {
      seen = job.state;
      console.log(`${job.id}: ${seen}`);
    }
  }
  if (job.state !== "succeeded" || !job.output) fail(`job ${job.id} ended ${job.state}: ${job.error}`);

  // Download: the API redirects to a short-lived presigned URL of the stored video, fetched
  // without the bearer token.
  const link = await client.GET("/v1/jobs/{id}/video", {
    params: { path: { id: job.id } },
    redirect: "manual",
    parseAs: "stream",
  });
  const location = link.response.headers.get("location");
  if (link.response.status !== 302 || !location) fail(`video refused: HTTP ${link.response.status}`);
  const download = await fetch(location);
  if (!download.ok) fail(`download failed: HTTP ${download.status}`);
  const body = Buffer.from(await download.arrayBuffer());
  writeFileSync(out, body);
  const digest = createHash("sha256").update(body).digest("hex");
  if (body.length !== job.output.bytes || digest !== job.output.sha256) {
    fail(`downloaded ${body.length} bytes sha256 ${digest}, the job says ${job.output.bytes} ${job.output.sha256}`);
  }
  console.log(`downloaded ${body.length} bytes to ${out}, sha256 ${digest} as the job says`);
}

if (process.argv.length !== 4) fail("usage: node dist/follow-job.js SOURCE_VIDEO_URL OUT_FILE");
const [source, out] = process.argv.slice(2) as [string, string];
await main(source, out);
