// JSON over fetch, and the supervisor token kept in this browser's localStorage.

const TOKEN_KEY = "qc.token";

export class HttpError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch (err) {
    console.warn("cannot read the token", err);
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch (err) {
    console.warn("cannot store the token", err);
  }
}

async function request(method, url, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const data = await response.json();
      detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (err) {
      console.warn("error body is not JSON", err);
    }
    throw new HttpError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

export const getJSON = (url) => request("GET", url);
/** A write: always sends the stored supervisor token. */
export const postJSON = (url, body) => request("POST", url, body, getToken());
/** Whether `token` is the supervisor token (the API answers 401 otherwise). */
export async function checkToken(token) {
  try {
    await request("GET", "/api/v1/auth", undefined, token);
    return true;
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) return false;
    throw err;
  }
}

/** Query string from an object, skipping null/undefined values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}
