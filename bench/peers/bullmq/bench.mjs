// BullMQ's side of vidq-bench: the same work vidq-queue does, measured the same way.
//
//   node bench.mjs <scenario> --redis redis://127.0.0.1:PORT [--n N] [--concurrency C] ...
//
// Scenarios: drain (a), due (b: N jobs due at one instant), spread (b: N jobs due over a
// window), poll-step (c: moveToDelayed + DelayedError), memory (g). Each prints ONE line of JSON
// on stdout. Redis figures are deltas of INFO commandstats / cpu / memory around the measured
// phase, so run it against a Redis nothing else uses.
import { Queue, Worker, DelayedError } from 'bullmq';
import IORedis from 'ioredis';
import { readFileSync } from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(3).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const scenario = process.argv[2];
const url = new URL(args.redis ?? 'redis://127.0.0.1:6379');
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const n = Number(args.n ?? 1000);
const concurrency = Number(args.concurrency ?? 100);
const queueName = `bench-${scenario}-${Math.random().toString(16).slice(2, 10)}`;
const version = JSON.parse(
  readFileSync(new URL('./node_modules/bullmq/package.json', import.meta.url)),
).version;

const admin = new IORedis(connection);

async function snapshot() {
  const stats = await admin.info('commandstats');
  let calls = 0;
  let scripts = 0;
  for (const line of stats.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (!m) continue;
    calls += Number(m[2]);
    if (/^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/.test(m[1])) scripts += Number(m[2]);
  }
  const cpu = await admin.info('cpu');
  const num = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(cpu)?.[1] ?? 0);
  const mem = await admin.info('memory');
  const usedMemory = Number(/used_memory:(\d+)/.exec(mem)?.[1] ?? 0);
  return { calls, scripts, cpu: num('used_cpu_sys') + num('used_cpu_user'), usedMemory };
}

function delta(a, b, per) {
  return {
    commands_per_task: (b.calls - a.calls) / per,
    scripts_per_task: (b.scripts - a.scripts) / per,
    redis_cpu_us_per_task: ((b.cpu - a.cpu) * 1e6) / per,
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

async function until(what, deadlineMs, check) {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function addBulk(queue, jobs) {
  for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
}

async function drain() {
  const queue = new Queue(queueName, { connection });
  const jobs = Array.from({ length: n }, () => ({ name: 'noop', data: {} }));
  const s0 = await snapshot();
  const t0 = performance.now();
  await addBulk(queue, jobs);
  const pushSecs = (performance.now() - t0) / 1000;
  const s1 = await snapshot();
  let done = 0;
  const worker = new Worker(queueName, async () => {}, { connection, concurrency, autorun: false });
  worker.on('completed', () => { done += 1; });
  const s2 = await snapshot();
  const t1 = performance.now();
  worker.run();
  await until('every job to complete', 600_000, () => done >= n);
  const secs = (performance.now() - t1) / 1000;
  const s3 = await snapshot();
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return {
    push_tasks_per_s: n / pushSecs,
    push_commands_per_task: (s1.calls - s0.calls) / n,
    tasks_per_s: n / secs,
    ...delta(s2, s3, n),
  };
}

// N jobs due at one instant `lead` ms from now; the worker is idle and waiting before then.
async function due() {
  const lead = Number(args['lead-ms'] ?? 3000);
  const queue = new Queue(queueName, { connection });
  let done = 0;
  let last = 0;
  let errors = 0;
  const worker = new Worker(queueName, async () => {}, { connection, concurrency });
  worker.on('completed', () => { done += 1; last = Date.now(); });
  worker.on('failed', () => { errors += 1; });
  await worker.waitUntilReady();
  const dueAt = Date.now() + lead;
  for (let i = 0; i < n; i += 1000) {
    const now = Date.now();
    const chunk = Array.from({ length: Math.min(1000, n - i) }, () => ({
      name: 'due', data: {}, opts: { delay: Math.max(0, dueAt - now) },
    }));
    await queue.addBulk(chunk);
  }
  const pushedBeforeDue = Date.now() < dueAt;
  await until('every job to complete', 600_000, () => done + errors >= n);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return { done, errors, pushed_before_due: pushedBeforeDue, last_done_after_due_ms: last - dueAt };
}

// N jobs due at random times over `spread` ms; lateness = start of processing - due time.
async function spread() {
  const window = Number(args['spread-ms'] ?? 20000);
  const lead = Number(args['lead-ms'] ?? 1000);
  const queue = new Queue(queueName, { connection });
  const lateness = [];
  const worker = new Worker(queueName, async (job) => {
    lateness.push(Date.now() - job.data.due);
  }, { connection, concurrency });
  await worker.waitUntilReady();
  const start = Date.now() + lead;
  const jobs = Array.from({ length: n }, () => {
    const dueAt = start + Math.floor(Math.random() * window);
    return { name: 'spread', data: { due: dueAt }, opts: { delay: dueAt - Date.now() } };
  });
  await addBulk(queue, jobs);
  await until('every job to run', window + 120_000, () => lateness.length >= n);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  lateness.sort((a, b) => a - b);
  return {
    done: lateness.length,
    early: lateness.filter((l) => l < 0).length,
    p50_ms: percentile(lateness, 50),
    p99_ms: percentile(lateness, 99),
    max_ms: lateness[lateness.length - 1],
  };
}

// One "not ready yet, run again in 5 s" step per job: moveToDelayed + DelayedError.
async function pollStep() {
  const delayMs = Number(args['delay-ms'] ?? 5000);
  const queue = new Queue(queueName, { connection });
  await addBulk(queue, Array.from({ length: n }, () => ({ name: 'poll', data: {} })));
  const worker = new Worker(queueName, async (job, token) => {
    await job.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  }, { connection, concurrency, autorun: false });
  const s0 = await snapshot();
  const t0 = performance.now();
  worker.run();
  await until('every job to be delayed', 600_000, async () => (await queue.getDelayedCount()) >= n);
  const secs = (performance.now() - t0) / 1000;
  const s1 = await snapshot();
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return { steps_per_s: n / secs, ...delta(s0, s1, n) };
}

// Redis bytes per waiting job (200-byte payload) and per finished job (default settings).
async function memory() {
  const payload = Number(args.payload ?? 200);
  const queue = new Queue(queueName, { connection });
  // The payload's JSON is `payload` bytes long: {"p":"xxx..."} has 8 bytes of framing.
  const data = { p: 'x'.repeat(Math.max(0, payload - 8)) };
  await queue.waitUntilReady();
  const m0 = (await snapshot()).usedMemory;
  await addBulk(queue, Array.from({ length: n }, () => ({ name: 'm', data })));
  const m1 = (await snapshot()).usedMemory;
  let done = 0;
  const worker = new Worker(queueName, async () => {}, { connection, concurrency });
  worker.on('completed', () => { done += 1; });
  await until('every job to complete', 600_000, () => done >= n);
  await worker.close();
  const m2 = (await snapshot()).usedMemory;
  await queue.obliterate({ force: true });
  await queue.close();
  return { waiting_bytes_per_task: (m1 - m0) / n, finished_bytes_per_task: (m2 - m0) / n };
}

const scenarios = { drain, due, spread, 'poll-step': pollStep, memory };
try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  const result = await scenarios[scenario]();
  console.log(JSON.stringify({ bullmq: version, scenario, n, concurrency, ...result }));
  await admin.quit();
  process.exit(0);
} catch (err) {
  console.error(err);
  process.exit(1);
}
