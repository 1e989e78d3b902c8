// UI strings and number/date formatting. Every visible string comes from
// /api/v1/i18n/<lang> (station/locales/*.json); the modules hold keys only.

const STORAGE_KEY = "qc.lang";
let lang = document.documentElement.lang || "fr";
let messages = {};

/** Translate `key`, filling `{name}` placeholders; an unknown key shows as itself. */
export function t(key, params = {}) {
  let text = messages[key] ?? key;
  for (const [name, value] of Object.entries(params)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** The translation of `key` if there is one, else `fallback` (e.g. a raw defect code). */
export function tOr(key, fallback) {
  return messages[key] ?? fallback;
}

export const currentLang = () => lang;

export function formatNumber(n, digits = 0) {
  return new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

export function formatPercent(ratio, digits = 1) {
  return new Intl.NumberFormat(lang, {
    style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(ratio);
}

export const formatTime = (date) => date.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
export const formatHour = (date) => date.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
export const formatDateTime = (date) => date.toLocaleString(lang, { dateStyle: "short", timeStyle: "medium" });

export const defectName = (code) => tOr(`defect.${code}`, code);
export const labelName = (label) => (label === "good" ? t("label.good") : defectName(label));

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch (err) {
    console.warn("cannot read the language choice", err);
    return null;
  }
}

function remember(next) {
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch (err) {
    console.warn("cannot remember the language choice", err);
  }
}

/** Load `next` (default: the stored choice, else the page's) and relabel static text. */
export async function loadLanguage(next = null, persist = false) {
  const wanted = next || stored() || lang;
  const response = await fetch(`/api/v1/i18n/${encodeURIComponent(wanted)}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`locale ${wanted}: HTTP ${response.status}`);
  messages = await response.json();
  lang = wanted;
  document.documentElement.lang = wanted;
  document.title = t("page.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  if (persist) remember(wanted);
}
