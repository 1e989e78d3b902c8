// Supervisor page: counters, charts and gallery kept live by Server-Sent Events.
// The counts snapshot carries `last_seq`; streamed inspections with a greater `seq`
// are added on top, so a reconnect never counts a mask twice. Only the station's
// health is polled (every few seconds); nothing else is.
import { getJSON, query } from "./api.js";
import { currentLang, formatTime, loadLanguage, t } from "./i18n.js";
import { HourlyChart, SpcCharts } from "./charts.js";
import { Gallery } from "./gallery.js";
import {
  bindBatchControls, bindTokenDialog, renderBanner, renderBatch, renderCounters, renderHealth,
  renderPareto, renderRate, renderScope, renderState,
} from "./panels.js";

const STATUS_EVERY_MS = 5000;
const RATE_WINDOW_MS = 5 * 60 * 1000;
const SPC_DEBOUNCE_MS = 10000;
const byId = (id) => document.getElementById(id);

const state = {
  status: null,
  scope: null, // {batch, since, key}
  counts: null,
  lastSeq: 0,
  hourly: [],
  recent: [], // capture times (ms) of recent inspections, for masks per minute
  syncing: false,
  buffered: [],
  connected: false,
  lastEventAt: null,
};

const hourly = new HourlyChart(byId("hourly-chart"), byId("hourly-empty"));
const spc = new SpcCharts(["width_mm", "height_mm"]);
const gallery = new Gallery(byId("gallery"), byId("gallery-empty"), () => state.specs || [], () => state.labels || []);
let spcTimer = null;

function startOfToday() {
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  return today;
}

function scopeFor(status) {
  if (status?.batch) return { batch: status.batch.id, since: null, key: `batch:${status.batch.id}` };
  const since = startOfToday().toISOString();
  return { batch: null, since, key: `since:${since}` };
}

function inScope(ev) {
  if (!state.scope) return false;
  if (state.scope.batch) return ev.batch_id === state.scope.batch;
  return ev.ts_utc >= state.scope.since;
}

// -- rendering ------------------------------------------------------------------------
let frame = null;
function render() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = null;
    if (state.counts) {
      renderCounters(state.counts);
      renderPareto(state.counts.by_defect);
      hourly.update(state.hourly);
    }
    renderRate(ratePerMinute());
    renderFooter();
  });
}

function renderFooter() {
  const el = byId("updated");
  if (!state.connected) el.textContent = state.lastEventAt ? t("updated.stale", { time: formatTime(state.lastEventAt) }) : t("updated.never");
  else el.textContent = t("updated.live", { time: formatTime(state.lastEventAt || new Date()) });
  document.body.classList.toggle("stale", !state.connected);
}

function ratePerMinute() {
  const now = Date.now();
  state.recent = state.recent.filter((ms) => ms > now - RATE_WINDOW_MS);
  const uptimeMs = (state.status?.uptime_s ?? RATE_WINDOW_MS / 1000) * 1000;
  const windowMin = Math.max(1, Math.min(RATE_WINDOW_MS, uptimeMs) / 60000);
  return state.recent.length / windowMin;
}

function renderAll() {
  if (state.status) {
    renderState(state.status);
    renderBanner(state.status);
    renderHealth(state.status);
    renderBatch(state.status.batch);
    renderScope(state.status.batch);
  }
  render();
  spc.redraw();
  gallery.rerender();
}

// -- data -----------------------------------------------------------------------------
function applyInspection(ev) {
  if (ev.seq <= state.lastSeq) return;
  state.lastSeq = ev.seq;
  state.recent.push(Date.parse(ev.ts_utc));
  if (!inScope(ev) || !state.counts) return;
  const c = state.counts;
  c.total += 1;
  if (ev.verdict === "accept") c.accepted += 1;
  else if (ev.verdict === "no_mask") c.no_mask += 1;
  else {
    c.rejected += 1;
    if (ev.verdict === "error") c.errors += 1;
  }
  for (const code of ev.defects) c.by_defect[code] = (c.by_defect[code] || 0) + 1;
  const hour = new Date(ev.ts_utc);
  hour.setUTCMinutes(0, 0, 0);
  const key = hour.toISOString().replace(/\.\d{3}Z$/, ".000Z");
  let bucket = state.hourly.find((b) => b.start_utc === key);
  if (!bucket) {
    bucket = { start_utc: key, total: 0, accepted: 0, rejected: 0, no_mask: 0, errors: 0 };
    state.hourly.push(bucket);
  }
  bucket.total += 1;
  if (ev.verdict === "accept") bucket.accepted += 1;
  else if (ev.verdict === "no_mask") bucket.no_mask += 1;
  else bucket.rejected += 1;
  if ((ev.verdict === "reject" || ev.verdict === "error") && ev.has_image) gallery.prepend(ev);
  if (ev.width_mm !== null || ev.height_mm !== null) scheduleSpc();
}

function scheduleSpc() {
  if (spcTimer) return;
  spcTimer = setTimeout(() => {
    spcTimer = null;
    loadSpc();
  }, SPC_DEBOUNCE_MS);
}

async function loadSpc() {
  try {
    const data = await getJSON(`/api/v1/spc?${query({ batch: state.scope?.batch, since: state.scope?.since, points: 300 })}`);
    spc.update(data);
    byId("spc-scope").textContent = data.spec;
  } catch (err) {
    console.warn("SPC unavailable", err);
  }
}

/** Counts and hourly series from one snapshot, then the events that arrived meanwhile. */
async function resync() {
  if (!state.scope) return;
  state.syncing = true;
  state.buffered = [];
  try {
    const params = { batch: state.scope.batch, since: state.scope.since };
    const [counts, recent] = await Promise.all([
      getJSON(`/api/v1/counts?${query({ ...params, group_by: "hour" })}`),
      getJSON(`/api/v1/inspections?${query({ since: new Date(Date.now() - RATE_WINDOW_MS).toISOString(), limit: 500 })}`),
    ]);
    state.hourly = counts.series;
    delete counts.series;
    state.counts = counts;
    state.lastSeq = counts.last_seq;
    state.recent = recent.items.filter((i) => i.seq <= counts.last_seq).map((i) => Date.parse(i.ts_utc));
  } catch (err) {
    console.warn("resync failed", err);
  } finally {
    state.syncing = false;
  }
  for (const ev of state.buffered) applyInspection(ev);
  state.buffered = [];
  render();
  gallery.load(state.scope);
  loadSpc();
}

async function refreshStatus() {
  try {
    state.status = await getJSON("/api/v1/status");
  } catch (err) {
    console.warn("status unavailable", err);
    state.status = { state: "offline", faults: [{ code: "api", severity: "fault" }], batch: state.status?.batch ?? null };
  }
  const scope = scopeFor(state.status);
  const changed = !state.scope || scope.key !== state.scope.key;
  state.scope = scope;
  renderAll();
  if (changed && state.connected) await resync();
}

function openStream() {
  const source = new EventSource("/api/v1/events");
  source.addEventListener("open", () => {
    state.connected = true;
    resync();
  });
  source.addEventListener("error", () => {
    state.connected = false;
    render();
  });
  source.addEventListener("inspection", (message) => {
    const ev = JSON.parse(message.data);
    state.lastEventAt = new Date();
    if (state.syncing) state.buffered.push(ev);
    else applyInspection(ev);
    render();
  });
  source.addEventListener("batch", () => refreshStatus());
  source.addEventListener("label", (message) => gallery.labelled(JSON.parse(message.data)));
}

async function boot() {
  try {
    await loadLanguage();
  } catch (err) {
    console.warn("cannot load the language", err);
  }
  try {
    [state.specs, state.labels] = await Promise.all([
      getJSON("/api/v1/specs"),
      getJSON("/api/v1/labels").then((r) => r.labels),
    ]);
  } catch (err) {
    console.warn("specs or labels unavailable", err);
  }
  byId("lang-switch").addEventListener("click", async () => {
    try {
      await loadLanguage(t("lang.switch_to"), true);
      renderAll();
    } catch (err) {
      console.warn("cannot switch language", err);
    }
  });
  bindTokenDialog();
  bindBatchControls(() => state.specs || [], () => state.status, refreshStatus);
  bindLivePreview();
  await refreshStatus();
  openStream();
  setInterval(refreshStatus, STATUS_EVERY_MS);
  setInterval(render, 5000);
  document.documentElement.dataset.ready = currentLang();
}

function bindLivePreview() {
  const key = "qc.preview";
  const img = byId("live");
  const button = byId("live-toggle");
  const apply = (on) => {
    img.hidden = !on;
    byId("live-off").hidden = on;
    button.dataset.i18n = on ? "live.hide" : "live.show";
    button.textContent = t(button.dataset.i18n);
    if (on) img.src = `/api/v1/live.mjpg?t=${Date.now()}`;
    else img.removeAttribute("src");
  };
  let on = false;
  try {
    on = localStorage.getItem(key) === "1";
  } catch (err) {
    console.warn("cannot read the preview choice", err);
  }
  img.addEventListener("error", () => {
    if (!img.hidden) byId("live-off").textContent = t("live.unavailable");
  });
  button.addEventListener("click", () => {
    on = !on;
    try {
      localStorage.setItem(key, on ? "1" : "0");
    } catch (err) {
      console.warn("cannot store the preview choice", err);
    }
    apply(on);
  });
  apply(on);
}

boot();
