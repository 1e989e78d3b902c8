// Counters, Pareto, station health, fault banner, batch and token controls.
import { checkToken, getToken, HttpError, postJSON, setToken } from "./api.js";
import { defectName, formatDateTime, formatNumber, formatPercent, t, tOr } from "./i18n.js";

const byId = (id) => document.getElementById(id);
const EMPTY = () => t("value.empty");

export function renderCounters(c) {
  byId("n-total").textContent = formatNumber(c.total);
  byId("n-accepted").textContent = formatNumber(c.accepted);
  byId("n-rejected").textContent = formatNumber(c.rejected);
  byId("n-no-mask").textContent = c.no_mask ? t("counts.no_mask_n", { n: formatNumber(c.no_mask) }) : "";
  byId("n-errors").textContent = c.errors ? t("counts.errors", { n: formatNumber(c.errors) }) : "";
  const decided = c.accepted + c.rejected;
  const yieldEl = byId("n-yield");
  yieldEl.textContent = decided ? formatPercent(c.accepted / decided) : EMPTY();
  yieldEl.closest(".card").classList.toggle("low", decided > 0 && c.accepted / decided < 0.9);
}

export function renderRate(perMinute) {
  byId("n-rate").textContent = formatNumber(perMinute, 1);
}

export function renderPareto(byDefect) {
  const entries = Object.entries(byDefect).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  const max = entries.length ? entries[0][1] : 1;
  let running = 0;
  const items = entries.map(([code, n]) => {
    running += n;
    const li = document.createElement("li");
    li.dataset.code = code;
    const name = document.createElement("span");
    name.className = "pareto-name";
    name.textContent = defectName(code);
    const bar = document.createElement("span");
    bar.className = "pareto-bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * n) / max}%`;
    bar.append(fill);
    const count = document.createElement("span");
    count.className = "pareto-count num";
    count.textContent = formatNumber(n);
    const cum = document.createElement("span");
    cum.className = "pareto-cum num muted";
    cum.textContent = formatPercent(running / total, 0);
    cum.title = t("pareto.cumulative");
    li.append(name, bar, count, cum);
    return li;
  });
  byId("pareto").replaceChildren(...items);
  byId("pareto-empty").hidden = items.length > 0;
}

export function renderState(status) {
  const state = String(status.state || "unknown");
  const badge = byId("state");
  badge.textContent = tOr(`state.${state}`, state);
  badge.className = `state state-${state.replace(/[^a-z_]/g, "")}`;
}

export function renderScope(batch) {
  byId("scope").textContent = !batch
    ? t("scope.today")
    : batch.order_number
      ? t("scope.batch_order", { batch: batch.id, order: batch.order_number })
      : t("scope.batch", { batch: batch.id });
}

export function renderBanner(status) {
  const faults = status.faults || [];
  const severe = faults.filter((f) => f.severity === "fault");
  const shown = severe.length ? severe : faults;
  const banner = byId("banner");
  banner.hidden = shown.length === 0;
  banner.classList.toggle("banner-fault", severe.length > 0);
  banner.classList.toggle("banner-warning", severe.length === 0);
  byId("banner-title").textContent = t(severe.length ? "banner.fault" : "banner.warning");
  const state = tOr(`state.${status.state}`, status.state);
  byId("banner-text").textContent = shown.map((f) => t(`fault.${f.code}`, { state })).join(" · ");
  document.body.classList.toggle("faulted", severe.length > 0);
}

function row(key, value, level = "") {
  const dt = document.createElement("dt");
  dt.textContent = t(key);
  const dd = document.createElement("dd");
  dd.textContent = value ?? EMPTY();
  if (level) dd.dataset.level = level;
  return [dt, dd];
}

const short = (hash) => (typeof hash === "string" ? hash.replace(/^sha256:/, "").slice(0, 10) : null);

export function renderHealth(s) {
  const items = [];
  const cam = s.camera || {};
  const camState = cam.state ? tOr(`camera.${cam.state}`, cam.state) : null;
  const fps = typeof cam.fps === "number" ? t("unit.fps", { value: formatNumber(cam.fps, 1) }) : null;
  const camera = [camState, fps, cam.source].filter(Boolean).join(" · ");
  items.push(...row("health.camera", camera || null, cam.state && cam.state !== "ok" ? "bad" : "ok"));
  const gpio = s.gpio || {};
  if (Object.keys(gpio).length) {
    const gpioText = [gpio.light ? tOr(`light.${gpio.light}`, gpio.light) : null, gpio.fault ? t("health.fault_out") : null]
      .filter(Boolean).join(" · ");
    items.push(...row("health.gpio", gpioText || t("value.ok"), gpio.fault ? "bad" : "ok"));
  }
  const disk = s.disk || {};
  if (typeof disk.free_mb === "number") {
    const free = t("unit.gb_free", { value: formatNumber(disk.free_mb / 1024, 1) });
    const used = typeof disk.used_pct === "number" ? t("unit.pct_used", { value: formatNumber(disk.used_pct, 0) }) : "";
    const level = s.faults?.some((f) => f.code === "disk") ? "bad" : "ok";
    items.push(...row("health.disk", [free, used].filter(Boolean).join(" · "), level));
  }
  if (typeof s.temperature_c === "number") {
    const level = s.faults?.some((f) => f.code === "temperature") ? "bad" : "ok";
    items.push(...row("health.temperature", t("unit.celsius", { value: formatNumber(s.temperature_c, 1) }), level));
  }
  const model = s.model || {};
  const modelText = [model.name, model.version, short(model.hash)].filter(Boolean).join(" · ");
  items.push(...row("health.model", modelText || null));
  const cal = s.calibration || {};
  const age = typeof cal.age_days === "number" ? t("unit.days_ago", { value: formatNumber(cal.age_days, 0) }) : null;
  items.push(...row("health.calibration", [cal.version, age].filter(Boolean).join(" · ") || null));
  if (s.spec?.version) items.push(...row("health.spec", s.spec.version));
  const lat = s.latency_ms || {};
  if (typeof lat.p50 === "number") {
    const p99 = typeof lat.p99 === "number" ? formatNumber(lat.p99) : EMPTY();
    items.push(...row("health.latency", t("unit.latency", { p50: formatNumber(lat.p50), p99 })));
  }
  if (typeof s.late === "number") items.push(...row("health.late", formatNumber(s.late), s.late > 0 ? "warn" : "ok"));
  if (typeof s.uptime_s === "number") {
    const minutes = Math.floor(s.uptime_s / 60);
    items.push(...row("health.uptime", t("unit.duration", { h: Math.floor(minutes / 60), m: minutes % 60 })));
  }
  if (s.message) items.push(...row("health.message", s.message, "bad"));
  byId("health").replaceChildren(...items);
}

let batchShown = null;

export function renderBatch(batch) {
  batchShown = batch;
  const items = [];
  if (batch) {
    items.push(...row("batch.id", batch.id));
    items.push(...row("batch.order", batch.order_number || EMPTY()));
    items.push(...row("batch.spec", batch.spec_name || EMPTY()));
    items.push(...row("batch.started", formatDateTime(new Date(batch.started_utc))));
  }
  byId("batch-details").replaceChildren(...items);
  byId("batch-none").hidden = Boolean(batch);
  byId("batch-close").hidden = !batch;
  const start = byId("batch-start");
  start.dataset.i18n = batch ? "batch.switch" : "batch.start";
  start.textContent = t(start.dataset.i18n);
}

function explain(err) {
  if (err instanceof HttpError && err.status === 401) return t("token.required");
  if (err instanceof HttpError && err.status === 409) return t("error.conflict", { detail: err.detail });
  return t("error.generic", { detail: err.message });
}

export function bindBatchControls(specs, status, refresh) {
  const dialog = byId("batch-dialog");
  const message = byId("batch-message");
  byId("batch-start").addEventListener("click", () => {
    const select = byId("batch-spec");
    const options = specs().map((s) => {
      const option = document.createElement("option");
      option.value = s.name;
      option.textContent = `${s.name} (${s.version})`;
      option.selected = s.current;
      return option;
    });
    select.replaceChildren(...options);
    message.textContent = getToken() ? "" : t("token.required");
    dialog.showModal();
    byId("batch-order").focus();
  });
  byId("batch-cancel").addEventListener("click", () => dialog.close());
  byId("batch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = t("form.saving");
    try {
      await postJSON("/api/v1/batches", {
        order_number: byId("batch-order").value.trim() || null,
        spec_name: byId("batch-spec").value || null,
        close_previous: Boolean(status()?.batch),
      });
      dialog.close();
      await refresh();
    } catch (err) {
      message.textContent = explain(err);
    }
  });
  const close = byId("batch-close");
  let armed = null;
  close.addEventListener("click", async () => {
    if (!batchShown) return;
    if (!armed) {
      close.textContent = t("batch.close_confirm");
      armed = setTimeout(() => {
        armed = null;
        close.textContent = t("batch.close");
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    close.textContent = t("batch.close");
    byId("batch-error").textContent = "";
    try {
      await postJSON(`/api/v1/batches/${encodeURIComponent(batchShown.id)}/close`, {});
      await refresh();
    } catch (err) {
      byId("batch-error").textContent = explain(err);
    }
  });
}

export function bindTokenDialog() {
  const dialog = byId("token-dialog");
  const input = byId("token-input");
  const message = byId("token-message");
  const button = byId("token-open");
  const mark = () => button.classList.toggle("has-token", Boolean(getToken()));
  mark();
  button.addEventListener("click", () => {
    input.value = getToken();
    message.textContent = getToken() ? t("token.stored") : "";
    dialog.showModal();
    input.focus();
  });
  byId("token-cancel").addEventListener("click", () => dialog.close());
  byId("token-forget").addEventListener("click", () => {
    setToken("");
    input.value = "";
    message.textContent = t("token.forgotten");
    mark();
  });
  byId("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    message.textContent = t("form.checking");
    try {
      if (await checkToken(token)) {
        setToken(token);
        message.textContent = t("token.valid");
        mark();
        setTimeout(() => dialog.close(), 600);
      } else {
        message.textContent = t("token.invalid");
      }
    } catch (err) {
      message.textContent = explain(err);
    }
  });
}

export { explain };
