// The latest rejects with their annotated images; a click opens the detail, where a
// supervisor confirms or corrects the verdict (this feeds the classifier's training set).
import { getJSON, getToken, postJSON, query } from "./api.js";
import { defectName, formatDateTime, formatNumber, formatTime, labelName, t } from "./i18n.js";
import { explain } from "./panels.js";

const SIZE = 12;
const THUMB_PX = 320;
const DETAIL_PX = 1280;
const byId = (id) => document.getElementById(id);

const thumbUrl = (id) => `/api/v1/inspections/${id}/image?width_px=${THUMB_PX}`;

export class Gallery {
  constructor(list, emptyEl, specs, labels) {
    this.list = list;
    this.emptyEl = emptyEl;
    this.items = [];
    this.labels = new Map();
    this.detail = new Detail(specs, labels, (id, label) => this.labelled({ id, label }));
  }

  async load(scope) {
    try {
      const page = await getJSON(`/api/v1/inspections?${query({ verdict: "reject", limit: SIZE * 2, batch: scope?.batch })}`);
      this.items = page.items.filter((i) => i.image_url).slice(0, SIZE).map((i) => ({
        id: i.id, ts_utc: i.ts_utc, defects: [...new Set(i.defects.map((d) => d.code))].sort(),
      }));
      this.rerender();
    } catch (err) {
      console.warn("gallery unavailable", err);
    }
  }

  prepend(ev) {
    if (this.items.some((i) => i.id === ev.id)) return;
    this.items.unshift({ id: ev.id, ts_utc: ev.ts_utc, defects: ev.defects });
    this.items.length = Math.min(this.items.length, SIZE);
    this.rerender();
  }

  labelled(ev) {
    this.labels.set(ev.id, ev.label);
    this.rerender();
  }

  rerender() {
    const cards = this.items.map((item) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.dataset.id = item.id;
      const img = document.createElement("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.src = thumbUrl(item.id);
      img.alt = t("gallery.alt", { time: formatTime(new Date(item.ts_utc)) });
      img.addEventListener("error", () => img.classList.add("missing"), { once: true });
      const caption = document.createElement("span");
      caption.className = "thumb-caption";
      const time = document.createElement("time");
      time.dateTime = item.ts_utc;
      time.textContent = formatTime(new Date(item.ts_utc));
      const chips = document.createElement("span");
      chips.className = "chips";
      for (const code of item.defects) {
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.textContent = defectName(code);
        chips.append(chip);
      }
      caption.append(time, chips);
      button.append(img, caption);
      const label = this.labels.get(item.id);
      if (label) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = t("gallery.labelled", { label: labelName(label) });
        button.append(badge);
      }
      button.addEventListener("click", () => this.detail.open(item.id));
      li.append(button);
      return li;
    });
    this.list.replaceChildren(...cards);
    this.emptyEl.hidden = cards.length > 0;
  }
}

class Detail {
  constructor(specs, labels, onLabelled) {
    this.specs = specs;
    this.labels = labels;
    this.onLabelled = onLabelled;
    this.dialog = byId("detail");
    this.record = null;
    byId("label-confirm").addEventListener("click", () => this.save(byId("label-confirm").dataset.label));
    byId("label-correct").addEventListener("click", () => this.save(byId("label-select").value));
  }

  async open(id) {
    byId("label-message").textContent = "";
    try {
      this.record = await getJSON(`/api/v1/inspections/${encodeURIComponent(id)}`);
    } catch (err) {
      console.warn("inspection unavailable", err);
      return;
    }
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
  }

  specFor(record) {
    const label = record.spec_version || "";
    const specs = this.specs();
    return specs.find((s) => s.label === label)
      || specs.find((s) => s.name === label.split("@")[0])
      || specs.find((s) => s.current) || null;
  }

  render() {
    const r = this.record;
    const img = byId("detail-image");
    img.src = r.image_url ? `${r.image_url}?width_px=${DETAIL_PX}` : "";
    img.hidden = !r.image_url;
    img.alt = t("detail.image_alt");
    byId("detail-meta").textContent = [
      formatDateTime(new Date(r.ts_utc)),
      r.batch_id ? t("scope.batch", { batch: r.batch_id }) : null,
      typeof r.latency_ms === "number" ? t("unit.ms", { value: formatNumber(r.latency_ms) }) : null,
    ].filter(Boolean).join(" · ");
    const verdict = byId("detail-verdict");
    verdict.textContent = t(`verdict.${r.verdict}`);
    verdict.dataset.verdict = r.verdict;
    this.renderMeasures(r, this.specFor(r));
    const defects = r.defects.map((d) => {
      const li = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = defectName(d.code);
      li.append(name);
      if (d.message && d.message !== d.code) li.append(` — ${d.message}`);
      return li;
    });
    if (!defects.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = t("detail.no_defect");
      defects.push(li);
    }
    byId("detail-defects").replaceChildren(...defects);
    this.renderLabel(r);
  }

  renderMeasures(r, spec) {
    const limits = spec
      ? {
          width_mm: spec.width_mm, height_mm: spec.height_mm, stitch_length_mm: spec.stitch_length_mm,
          pleats: { lo: spec.pleats, hi: spec.pleats }, ear_loops: { lo: spec.ear_loops, hi: spec.ear_loops },
        }
      : {};
    const rows = ["width_mm", "height_mm", "pleats", "ear_loops", "stitch_length_mm"].map((key) => {
      const value = r[key];
      const limit = limits[key];
      const tr = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = t(`measure.${key}`);
      const cell = document.createElement("td");
      cell.className = "num";
      const digits = key.endsWith("_mm") ? 1 : 0;
      cell.textContent = value === null || value === undefined ? t("value.empty") : formatNumber(value, digits);
      const range = document.createElement("td");
      range.className = "num muted";
      if (limit) {
        range.textContent = limit.lo === limit.hi
          ? formatNumber(limit.lo)
          : t("detail.range", { lo: formatNumber(limit.lo, 1), hi: formatNumber(limit.hi, 1) });
        if (value !== null && value !== undefined) {
          cell.dataset.level = value < limit.lo || value > limit.hi ? "bad" : "ok";
        }
      } else {
        range.textContent = t("value.empty");
      }
      tr.append(name, cell, range);
      return tr;
    });
    byId("detail-measures").replaceChildren(...rows);
  }

  renderLabel(r) {
    const allowed = new Set(this.labelChoices());
    const codes = r.defects.map((d) => d.code).filter((c) => allowed.has(c));
    const suggested = r.verdict === "accept" ? "good" : codes[0] || null;
    const confirm = byId("label-confirm");
    confirm.hidden = !suggested;
    if (suggested) {
      confirm.dataset.label = suggested;
      confirm.textContent = t("label.confirm", { label: labelName(suggested) });
    }
    const select = byId("label-select");
    const options = this.labelChoices().map((label) => {
      const option = document.createElement("option");
      option.value = label;
      option.textContent = labelName(label);
      return option;
    });
    select.replaceChildren(...options);
    select.value = r.label?.label || (suggested === "good" ? "" : "good");
    byId("label-current").textContent = r.label
      ? t("label.current", { label: labelName(r.label.label), time: formatDateTime(new Date(r.label.ts_utc)) })
      : t("label.none");
    if (!getToken()) byId("label-message").textContent = t("token.required");
  }

  labelChoices() {
    return this.labels().length ? this.labels() : ["good"];
  }

  async save(label) {
    if (!label || !this.record) return;
    const message = byId("label-message");
    message.textContent = t("form.saving");
    message.dataset.level = "";
    try {
      const result = await postJSON(`/api/v1/inspections/${this.record.id}/label`, { label });
      this.record.label = result.label;
      this.renderLabel(this.record);
      message.textContent = t(result.agrees ? "label.saved_confirmed" : "label.saved_corrected", { label: labelName(label) });
      message.dataset.level = "ok";
      this.onLabelled(this.record.id, label);
    } catch (err) {
      message.textContent = explain(err);
      message.dataset.level = "bad";
    }
  }
}
