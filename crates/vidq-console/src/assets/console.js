// Live pages: a page whose <main> carries data-live ("all", or one job's id) listens to
// /console/events and, when a job it shows moves, fetches itself again and swaps its
// [data-live-part] elements in place: no reload, no navigation. Checked boxes stay checked.
(() => {
  "use strict";
  const main = document.querySelector("main[data-live]");
  if (!main || typeof EventSource === "undefined") return;
  const want = main.dataset.live;
  let timer = null;
  let busy = false;
  let again = false;

  const refresh = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const response = await fetch(location.href, {
        credentials: "same-origin",
        headers: { "X-Console-Live": "1" },
      });
      if (response.redirected || response.url.includes("/console/login")) {
        location.assign("/console/login");
        return;
      }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const checked = new Set(
        [...main.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.value),
      );
      for (const part of main.querySelectorAll("[data-live-part]")) {
        const next = fresh.querySelector(`[data-live-part="${part.dataset.livePart}"]`);
        if (!next) continue;
        const node = document.importNode(next, true);
        for (const box of node.querySelectorAll("input[type=checkbox]")) {
          if (checked.has(box.value)) box.checked = true;
        }
        part.replaceWith(node);
      }
      document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
    } catch (_) {
      // The next event tries again.
    } finally {
      busy = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };

  const schedule = () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      refresh();
    }, 250);
  };

  const source = new EventSource("/console/events");
  source.addEventListener("open", () => {
    document.body.dataset.live = "connected";
  });
  source.addEventListener("job", (e) => {
    let moved;
    try {
      moved = JSON.parse(e.data);
    } catch (_) {
      return;
    }
    if (want === "all" || want === moved.id) schedule();
  });
  source.addEventListener("resync", schedule);
  source.addEventListener("signed-out", () => {
    source.close();
    location.assign("/console/login");
  });
})();
