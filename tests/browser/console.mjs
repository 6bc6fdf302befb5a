// The console in a real Chromium against a live API, worker and simulator (scripts/check-console
// starts them and passes their addresses and tokens in the environment). Every wait polls a
// condition with a deadline; a failed check exits non-zero with what was seen.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const API = process.env.VIDQ_API;
const ADMIN = process.env.VIDQ_ADMIN_TOKEN;
const WRITE = process.env.VIDQ_WRITE_TOKEN;
const READ = process.env.VIDQ_READ_TOKEN;
const BUCKET_DIR = process.env.VIDQ_S3_BUCKET_DIR;
const SCREENS = process.env.VIDQ_SCREENS;
const WORKER_PID = process.env.VIDQ_WORKER_PID;
const GONE = process.env.VIDQ_GONE_TOKEN; // removed from the API's config mid-test (SIGHUP)
const API_CONFIG = process.env.VIDQ_API_CONFIG;
const API_PID = Number(process.env.VIDQ_API_PID);

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function until(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function api(method, path, token, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// A webhook receiver: answers 400 (a permanent refusal: the task goes dead at once) until
// `healthy`, then 200. It also serves a page that forges a console action.
let healthy = false;
const deliveries = [];
const receiver = createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/forge')) {
    const target = decodeURIComponent(req.url.split('?to=')[1]);
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<form id="f" method="post" action="${target}"><input name="csrf" value="guessed"></form>
<script>document.getElementById('f').submit()</script>`);
    return;
  }
  req.resume();
  req.on('end', () => {
    deliveries.push({ at: Date.now(), healthy });
    res.writeHead(healthy ? 200 : 400);
    res.end();
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const hook = `http://127.0.0.1:${receiver.address().port}/hook`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
});
const shot = (page, name) => page.screenshot({ path: join(SCREENS, `${name}.png`), fullPage: true });

async function signIn(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${API}/console`);
  check(page.url().endsWith('/console/login'), 'a page without a session goes to the sign-in form');
  await page.fill('#token', token);
  await page.click('#sign-in');
  await page.waitForSelector('#who');
  return { context, page };
}

try {
  // A real playable video: the simulator's results only start like an MP4, so Chromium
  // records a 1 s WebM of a canvas, and it replaces the stored object below.
  const recorder = await browser.newPage();
  const webm = Buffer.from(
    await recorder.evaluate(async () => {
      const canvas = document.createElement('canvas');
      canvas.width = 320;
      canvas.height = 180;
      const g = canvas.getContext('2d');
      const stream = canvas.captureStream(25);
      const rec = new MediaRecorder(stream, { mimeType: 'video/webm;codecs=vp8' });
      const chunks = [];
      rec.ondataavailable = (e) => chunks.push(e.data);
      const done = new Promise((r) => (rec.onstop = r));
      rec.start(100);
      const start = performance.now();
      await new Promise((resolve) => {
        const frame = () => {
          const t = performance.now() - start;
          g.fillStyle = `hsl(${(t / 4) % 360}, 70%, 45%)`;
          g.fillRect(0, 0, 320, 180);
          g.fillStyle = '#fff';
          g.font = '28px sans-serif';
          g.fillText(`vidq ${(t / 1000).toFixed(2)} s`, 70, 100);
          if (t < 1200) requestAnimationFrame(frame);
          else resolve();
        };
        frame();
      });
      rec.stop();
      await done;
      const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
      let s = '';
      for (const b of bytes) s += String.fromCharCode(b);
      return btoa(s);
    }),
    'base64',
  );
  await recorder.close();
  check(webm.length > 1000, `Chromium recorded a ${webm.length}-byte WebM`);

  // Sign in (write token of tenant studio) and see a job enqueued through the API.
  const writer = await signIn(WRITE);
  await shot(writer.page, 'overview-tenant');
  // The jobs page is open before the job exists; it must appear and reach succeeded live,
  // by server-sent events: no reload, no navigation (a marker in the window survives).
  await writer.page.goto(`${API}/console/jobs`);
  await writer.page.waitForSelector('body[data-live="connected"]');
  let navigations = 0;
  const countNavigation = (frame) => {
    if (frame === writer.page.mainFrame()) navigations += 1;
  };
  writer.page.on('framenavigated', countNavigation);
  await writer.page.evaluate(() => {
    window.__noReload = 'still here';
  });
  const created = await api('POST', '/v1/jobs', WRITE, {
    reference_video_url: 'https://videos.example/console/first.mp4',
    model: 2000,
    metadata: { source: 'console-test' },
  });
  check(created.status === 202, `POST /v1/jobs: ${created.status}`);
  const id = created.body.id;
  const row = writer.page.locator(`tr[data-job="${id}"]`);
  await until('the new job to appear on the open jobs page', 30, async () => (await row.count()) === 1);
  check(true, 'the new job appeared on the open jobs page');
  const seen = new Set();
  await until('the job to reach succeeded on the open jobs page', 90, async () => {
    const state = (await row.count()) === 1 ? await row.getAttribute('data-state') : null;
    if (state) seen.add(state);
    return state === 'succeeded';
  });
  writer.page.off('framenavigated', countNavigation);
  const marker = await writer.page.evaluate(() => window.__noReload);
  const updates = Number(await writer.page.getAttribute('body', 'data-live-updates'));
  check(navigations === 0 && marker === 'still here', `no navigation or reload happened (${navigations} navigations)`);
  check(updates >= 2, `the job reached succeeded live (${updates} live updates; states seen: ${[...seen].join(' → ')})`);
  await shot(writer.page, 'jobs');

  // Its stored object becomes the recorded WebM; the page plays it.
  const file = readdirSync(BUCKET_DIR, { recursive: true })
    .map((f) => join(BUCKET_DIR, f))
    .find((f) => f.includes(id) && statSync(f).isFile());
  check(Boolean(file), `the job's object is in the bucket (${file})`);
  writeFileSync(file, webm);
  await writer.page.goto(`${API}/console/jobs/${id}`);
  check((await writer.page.textContent('#job-state')) === 'succeeded', 'the job page says succeeded');
  check(/^[0-9a-f]{64}$/.test((await writer.page.textContent('#sha256')).trim()), 'the job page shows the sha256');
  const duration = await writer.page.evaluate(async () => {
    const v = document.getElementById('video');
    if (v.readyState < 1) await new Promise((r, j) => { v.onloadedmetadata = r; v.onerror = () => j(new Error(`video error ${v.error && v.error.code}`)); });
    if (!Number.isFinite(v.duration)) {
      // A recorded WebM has no duration in its header: seeking to the end finds it.
      v.currentTime = 1e6;
      await new Promise((r) => (v.ondurationchange = r));
    }
    return v.duration;
  });
  check(Number.isFinite(duration) && duration > 0.5, `the <video> reports a duration of ${duration.toFixed(2)} s`);
  // A frame from the middle for the screenshot (seeked: the frame is decoded).
  await writer.page.evaluate(async () => {
    const v = document.getElementById('video');
    const seeked = new Promise((r) => (v.onseeked = r));
    v.currentTime = 0.6;
    await seeked;
  });
  await shot(writer.page, 'job');

  // Search by the upstream img_uuid finds the job.
  const imgUuid = (await writer.page.textContent('#img-uuid')).trim();
  check(imgUuid.length > 0 && imgUuid !== '—', `the job has an img_uuid (${imgUuid})`);
  await writer.page.goto(`${API}/console/jobs`);
  await writer.page.fill('#q', imgUuid);
  await writer.page.click('#filter');
  await writer.page.waitForURL(`**/console/jobs/${id}`);
  check(true, 'search by img_uuid opened the job');

  // A webhook the receiver refuses is a dead notify task; the admin retries it from the console.
  const hooked = await api('POST', '/v1/jobs', WRITE, {
    reference_video_url: 'https://videos.example/console/hooked.mp4',
    model: 2000,
    callback_url: hook,
  });
  check(hooked.status === 202, `POST /v1/jobs with a callback_url: ${hooked.status}`);
  const admin = await signIn(ADMIN);
  const deadRow = `section[data-queue="notify"] tr[data-task*="${hooked.body.id}"]`;
  await until('the refused webhook in the dead list', 90, async () => {
    await admin.page.goto(`${API}/console/dead`);
    return (await admin.page.locator(deadRow).count()) === 1;
  });
  check((await admin.page.textContent(deadRow)).includes('400'), 'the dead task shows its reason (HTTP 400)');
  const deadCount = await admin.page.getAttribute('section[data-queue="notify"] [data-dead]', 'data-dead');
  check(deadCount === '1', `the notify queue counts its dead tasks (${deadCount})`);
  await shot(admin.page, 'dead');
  healthy = true;
  await admin.page.click(`${deadRow} button[data-action="Retry"]`);
  await admin.page.waitForURL('**/console/dead');
  await until('the retried task to leave the dead list', 60, async () => {
    await admin.page.goto(`${API}/console/dead`);
    return (await admin.page.locator(deadRow).count()) === 0;
  });
  check(true, 'the retried dead task left the dead list');
  await until('the webhook delivered after the retry', 60, async () => deliveries.some((d) => d.healthy));
  check(true, 'the retried webhook was delivered (200)');
  // The job page lists both delivery attempts: the refused one (400) and the delivered one.
  const hookedId = hooked.body.id;
  await admin.page.goto(`${API}/console/jobs/${hookedId}`);
  await until('both delivery attempts on the job page', 30, async () => {
    await admin.page.goto(`${API}/console/jobs/${hookedId}`);
    return (await admin.page.locator('#deliveries tr[data-outcome]').count()) >= 2;
  });
  const rejectedRow = await admin.page.textContent('#deliveries tr[data-outcome="rejected"]');
  const deliveredRow = await admin.page.textContent('#deliveries tr[data-outcome="delivered"]');
  check(rejectedRow.includes('400') && deliveredRow.includes('200'), `webhook deliveries listed (400 refused, then 200 delivered)`);
  // Send the webhook again: one more delivery reaches the receiver and is listed.
  const sentBefore = deliveries.filter((d) => d.healthy).length;
  await admin.page.click('button[data-action="Send the webhook again"]');
  await admin.page.waitForURL(`**/console/jobs/${hookedId}?resent=1`);
  await until('the webhook sent again', 60, async () => deliveries.filter((d) => d.healthy).length > sentBefore);
  await until('the second delivered attempt on the job page', 30, async () => {
    await admin.page.goto(`${API}/console/jobs/${hookedId}`);
    return (await admin.page.locator('#deliveries tr[data-outcome="delivered"]').count()) === 2;
  });
  check(true, 'Send the webhook again delivered it once more, and the page lists it');
  await shot(admin.page, 'job-webhooks');
  // Two more refused webhooks, then Retry all.
  healthy = false;
  const more = [];
  for (const n of [1, 2]) {
    const r = await api('POST', '/v1/jobs', WRITE, {
      reference_video_url: `https://videos.example/console/hooked-${n}.mp4`,
      model: 2000,
      callback_url: hook,
    });
    more.push(r.body.id);
  }
  const deadOf = (id) => `section[data-queue="notify"] tr[data-task*="${id}"]`;
  await until('both refused webhooks in the dead list', 90, async () => {
    await admin.page.goto(`${API}/console/dead`);
    return (await admin.page.locator(`${deadOf(more[0])}, ${deadOf(more[1])}`).count()) === 2;
  });
  healthy = true;
  const delivered = deliveries.filter((d) => d.healthy).length;
  await admin.page.click('section[data-queue="notify"] button[data-action="Retry all"]');
  await admin.page.waitForURL('**/console/dead');
  await until('Retry all to empty the notify dead list', 60, async () => {
    await admin.page.goto(`${API}/console/dead`);
    return (await admin.page.locator('section[data-queue="notify"] tr[data-task]').count()) === 0;
  });
  await until('both webhooks delivered', 60, async () => deliveries.filter((d) => d.healthy).length >= delivered + 2);
  check(true, 'Retry all put both dead tasks back and their webhooks were delivered');
  // One more refused webhook, purged: it leaves the dead list and is never delivered.
  healthy = false;
  const doomed = await api('POST', '/v1/jobs', WRITE, {
    reference_video_url: 'https://videos.example/console/purged.mp4',
    model: 2000,
    callback_url: hook,
  });
  await until('the refused webhook to purge in the dead list', 90, async () => {
    await admin.page.goto(`${API}/console/dead`);
    return (await admin.page.locator(deadOf(doomed.body.id)).count()) === 1;
  });
  healthy = true;
  const deliveredBefore = deliveries.length;
  await admin.page.click('#purge-notify');
  await admin.page.waitForURL('**/console/dead/notify/purge');
  const confirmText = await admin.page.textContent('#purge-count');
  check(confirmText.includes('1') && confirmText.includes('notify'), `the purge asks to confirm first (${confirmText})`);
  await shot(admin.page, 'purge-confirm');
  await admin.page.click('button[data-action="Delete 1 dead tasks of notify"]');
  await admin.page.waitForURL('**/console/dead');
  const left = await admin.page.getAttribute('section[data-queue="notify"] [data-dead]', 'data-dead');
  check(left === '0', `the purge emptied the notify dead list (${left})`);
  check(deliveries.length === deliveredBefore, 'the purged webhook was not delivered');
  await admin.page.goto(`${API}/console`);
  check((await admin.page.locator('#queues tr[data-queue="notify"]').count()) === 1, 'the admin overview shows the queues');
  // The chart of the last hour: every job so far ended this hour.
  const chart = admin.page.locator('svg#chart');
  check((await chart.count()) === 1, 'the overview has the finished-per-minute chart');
  const charted = Number(await chart.getAttribute('data-succeeded'));
  const bars = await admin.page.locator('svg#chart rect.ok').count();
  const box = await chart.boundingBox();
  check(charted >= 5 && bars >= 1 && box.width > 300 && box.height > 60, `the chart renders (${charted} succeeded in ${bars} bars, ${Math.round(box.width)}×${Math.round(box.height)} px)`);
  check((await admin.page.textContent('#workers-alive')).trim() === '1', 'the overview counts one live worker');
  await shot(admin.page, 'overview');
  // The Workers page lists the worker process check-console started, with its queues.
  await admin.page.click('nav a[href="/console/workers"]');
  await admin.page.waitForSelector('#workers');
  const workerRow = `#workers tr[data-pid="${WORKER_PID}"]`;
  check((await admin.page.locator(workerRow).count()) === 1, `the Workers page lists the worker (pid ${WORKER_PID})`);
  const queuesShown = await admin.page.locator(`${workerRow} [data-queue]`).count();
  check(queuesShown === 4, `the worker's four queues are shown (${queuesShown})`);
  await shot(admin.page, 'workers');
  // Pause the submit queue from the overview, then resume it.
  await admin.page.goto(`${API}/console`);
  await admin.page.click('#queues tr[data-queue="submit"] button[data-action="Pause"]');
  await admin.page.waitForURL('**/console');
  const pausedFlag = await admin.page.getAttribute('#queues tr[data-queue="submit"] [data-paused]', 'data-paused');
  check(pausedFlag === 'true', `the overview shows submit paused (${pausedFlag})`);
  const paused = await api('GET', '/v1/queues', ADMIN);
  check(paused.body.queues.find((q) => q.queue === 'submit').paused === true, 'GET /v1/queues says submit is paused');
  await shot(admin.page, 'overview-paused');
  await admin.page.click('#queues tr[data-queue="submit"] button[data-action="Resume"]');
  await admin.page.waitForURL('**/console');
  const resumedFlag = await admin.page.getAttribute('#queues tr[data-queue="submit"] [data-paused]', 'data-paused');
  check(resumedFlag === 'false', `the overview shows submit running again (${resumedFlag})`);

  // A read token sees no action buttons; forged actions are refused and change nothing.
  const reader = await signIn(READ);
  await reader.page.goto(`${API}/console/jobs/${id}`);
  const buttons = await reader.page.locator('main button, main input[type="checkbox"]').count();
  check(buttons === 0, `a read session sees no action buttons on a job (${buttons})`);
  await reader.page.goto(`${API}/console/jobs`);
  check((await reader.page.locator('#bulk').count()) === 0, 'a read session gets no bulk actions');
  const csrf = await reader.page.getAttribute('input[name="csrf"]', 'value');
  const forgedRead = await reader.page.request.post(`${API}/console/dead/notify/retry-all`, {
    form: { csrf },
    maxRedirects: 0,
  });
  check(forgedRead.status() === 403, `a read session's POST with its own CSRF token is ${forgedRead.status()}`);
  // A page on another origin that auto-submits a cancel form in the admin's browser.
  const queued = await api('POST', '/v1/jobs', WRITE, {
    reference_video_url: 'https://videos.example/console/forged.mp4',
    model: 2000,
  });
  const forgeTo = `${API}/console/jobs/${queued.body.id}/cancel`;
  const [forged] = await Promise.all([
    admin.page.waitForResponse((r) => r.url() === forgeTo),
    admin.page.goto(`http://127.0.0.1:${receiver.address().port}/forge?to=${encodeURIComponent(forgeTo)}`),
  ]);
  check(forged.status() === 403, `a forged cross-origin cancel is ${forged.status()}`);
  const after = await api('GET', `/v1/jobs/${queued.body.id}`, ADMIN);
  check(after.body.state !== 'canceled', `the forged cancel changed nothing (state ${after.body.state})`);
  await shot(admin.page, 'forged-refused');

  // A session whose token is removed from the config (SIGHUP reloads it) is signed out: the
  // open page is told by its event stream and goes to the sign-in form.
  const gone = await signIn(GONE);
  await gone.page.goto(`${API}/console/jobs`);
  await gone.page.waitForSelector('body[data-live="connected"]');
  const config = readFileSync(API_CONFIG, 'utf8');
  const without = config.replace(/\[\[api\.tokens\]\]\nname = "leaver"\ntoken = "[^"]*"\nscopes = \["read"\]\n/, '');
  check(without !== config, 'the leaving token was removed from the config');
  writeFileSync(API_CONFIG, without);
  process.kill(API_PID, 'SIGHUP');
  await gone.page.waitForURL('**/console/login', { timeout: 20000 });
  await gone.page.goto(`${API}/console/jobs`);
  check(gone.page.url().endsWith('/console/login'), 'the session of a removed token is signed out');

  await shot((await signIn(READ)).page, 'overview-read');
  const login = await browser.newPage();
  await login.goto(`${API}/console/login`);
  await shot(login, 'sign-in');
  console.log('console: every check passed');
} finally {
  await browser.close();
  receiver.close();
}
