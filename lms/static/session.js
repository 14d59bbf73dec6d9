// One sign-in for every page of the node: the tokens, the sign-in form, refreshing the access
// token before it expires, one retry after a 401, and signing out.
//
//   import { api, signedIn } from "/static/session.js";
//   const me = await signedIn();          // the form first if nobody is signed in
//   const course = await api(`/api/v1/courses/${id}`);
//
// Where the tokens live: localStorage, shared by every tab and page of this origin, so a sign-in
// carries to a page opened in another tab (an instructor keeps the live room and the analytics
// side by side), and a sign-out in one tab is one in all (the `storage` event). sessionStorage
// keeps a copy per tab instead, and a duplicated tab starts with the same copy: a refresh token
// is usable once and a replayed one revokes its whole family (lms/accounts/service.py), so two
// tabs spending one copy would sign each other out. With one shared pair, refreshed under a Web
// Lock, each refresh token is spent once. (A page left while its refresh was in flight loses the
// new pair, and the next page spends the old token again: within REFRESH_REUSE_GRACE the server
// answers that with the same new pair rather than as a replay.) The cost: the pair outlives the
// browser session, until the refresh token expires or the user signs out (which revokes it on
// the server); script injected into the page could read either storage alike.

const ACCESS = "lms.access";
const REFRESH = "lms.refresh";
const RENEW_AT = "lms.renew_at";  // ms since the epoch: refresh from then on
const RENEW_AT_FRACTION = 0.8;    // of the access token's lifetime (`expires_in`)
const RETRY_MS = 30_000;          // after a refresh that failed for want of the network

let pageUser = null;  // the user id this page started for

// --- the stored pair -----------------------------------------------------------------------------

export function accessToken() { return localStorage.getItem(ACCESS); }

function save(pair) {
  localStorage.setItem(ACCESS, pair.access_token);
  localStorage.setItem(REFRESH, pair.refresh_token);
  localStorage.setItem(RENEW_AT, String(Date.now() + pair.expires_in * 1000 * RENEW_AT_FRACTION));
  scheduleRenewal();
}

function clear() {
  for (const key of [ACCESS, REFRESH, RENEW_AT]) localStorage.removeItem(key);
  clearTimeout(renewal);
}

// The user a token names (its `sub`), without verifying it: the server does that.
function userOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return Number(JSON.parse(atob(payload)).sub);
  } catch {
    return null;
  }
}

// An access token handed over in the URL's fragment, which the browser never sends to a server
// (links for API clients and scripts); it cannot be refreshed.
if (location.hash.startsWith("#token=")) {
  clear();
  localStorage.setItem(ACCESS, decodeURIComponent(location.hash.slice("#token=".length)));
  history.replaceState(null, "", location.pathname + location.search);
}

// --- refreshing: before the access token expires, and once after a 401 ------------------------

let renewal = 0;
let refreshing = null;  // this page's refresh in flight, shared by everyone waiting for it

function scheduleRenewal(delay) {
  clearTimeout(renewal);
  if (!localStorage.getItem(REFRESH)) return;
  const due = Number(localStorage.getItem(RENEW_AT)) - Date.now();
  renewal = setTimeout(async () => {
    if (Number(localStorage.getItem(RENEW_AT)) > Date.now()) return scheduleRenewal();  // another tab did
    scheduleRenewal((await refresh()) ? undefined : RETRY_MS);
  }, delay ?? Math.max(0, due));
}

/** Exchange the refresh token for a new pair; whether a usable access token is stored after. */
export function refresh() {
  if (!refreshing) {
    const seen = localStorage.getItem(REFRESH);
    const renew = () => renewFrom(seen);
    // Tabs take turns (the lock spans them); plain http on another host has no Web Locks.
    const done = navigator.locks ? navigator.locks.request("lms.refresh", renew) : renew();
    refreshing = done.finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function renewFrom(seen) {
  const current = localStorage.getItem(REFRESH);
  if (!current) return false;
  if (current !== seen) return true;  // another tab refreshed while this one waited its turn
  let response;
  try {
    response = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current }),
    });
  } catch {
    return false;  // offline: the pair stays, the next try may work
  }
  if (response.status === 401) clear();  // spent, revoked or expired: only a sign-in helps
  if (!response.ok) return false;
  save(await response.json());
  return true;
}

// --- the API -------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function send(path, { method = "GET", json, keepalive } = {}) {
  const headers = {};
  const token = accessToken();
  if (token) headers.Authorization = "Bearer " + token;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const body = json === undefined ? undefined : JSON.stringify(json);
  return fetch(path, { method, headers, body, keepalive });
}

/**
 * Call the API (`json`: a body to send as JSON) and return the decoded answer (null for 204).
 * A 401 leads to one refresh; if that fails, to the sign-in form, and the call goes again once
 * someone signed in. Other errors throw an `ApiError` with the status and the server's message.
 */
export async function api(path, options = {}) {
  let response = await send(path, options);
  if (response.status === 401 && (await refresh())) response = await send(path, options);
  if (response.status === 401) {
    await signIn("Your session has ended; sign in again.");
    response = await send(path, options);
  }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = body?.error;
    throw new ApiError(response.status, error?.code, error?.message || response.statusText);
  }
  return body;
}

// --- signing in and out --------------------------------------------------------------------------

let prompt = null;  // the sign-in everyone waits for, while the form shows

/**
 * Show the sign-in form (with `message`) and resolve once someone signed in. Callers at the same
 * time share one form. The page reloads if a different user signs in than the one it started for.
 */
export function signIn(message = "Sign in to continue.") {
  clear();
  const form = loginForm();
  form.querySelector(".notice").textContent = message;
  if (!prompt) {
    prompt = new Promise((resolve) => {
      form.hidden = false;
      form.onsubmit = async (event) => {
        event.preventDefault();
        const fields = new FormData(form);
        const response = await fetch("/api/v1/auth/login", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ email: fields.get("email"), password: fields.get("password") }),
        }).catch(() => null);
        if (!response?.ok) {
          const body = await response?.json().catch(() => null);
          form.querySelector(".notice").textContent = body?.error?.message || "The server cannot be reached.";
          return;
        }
        save(await response.json());
        signedInHere(form, resolve);
      };
      // Signed in from another tab meanwhile: the pair is there.
      form.signedInElsewhere = () => signedInHere(form, resolve);
    });
  }
  return prompt;
}

function signedInHere(form, resolve) {
  form.hidden = true;
  form.reset();
  form.signedInElsewhere = null;
  prompt = null;
  if (pageUser !== null && userOf(accessToken()) !== pageUser) location.reload();
  else resolve();
}

/** The signed-in user (`GET /api/v1/users/me`), after the sign-in form if nobody is. */
export async function signedIn() {
  if (!accessToken()) await signIn();
  const me = await api("/api/v1/users/me");
  pageUser = me.id;
  return me;
}

/** End the user's sessions on every device (the server revokes their tokens); the page starts
 * again, signed out, so nothing of theirs stays on it. */
export async function logOut() {
  try {
    await send("/api/v1/auth/logout", { method: "POST" });
  } finally {
    clear();
    location.reload();
  }
}

// The form lives at the top of the page's <main>; built once, the same on every page.
function loginForm() {
  let form = document.getElementById("login");
  if (form) return form;
  form = document.createElement("form");
  form.id = "login";
  form.className = "card signin";
  form.hidden = true;
  const heading = document.createElement("h2");
  heading.textContent = "Sign in";
  const notice = document.createElement("p");
  notice.className = "notice";
  notice.setAttribute("role", "status");
  const button = document.createElement("button");
  button.textContent = "Sign in";
  const email = field("E-mail", { name: "email", type: "email", autocomplete: "username" });
  form.append(
    heading,
    notice,
    email,
    field("Password", { name: "password", type: "password", autocomplete: "current-password" }),
    button,
    forgotLink(email.querySelector("input")),
  );
  (document.querySelector("main") || document.body).prepend(form);
  return form;
}

// To /reset-password (lms/static/reset_password.js), with the address typed so far in the
// fragment, which stays out of the server's logs.
function forgotLink(email) {
  const link = document.createElement("a");
  link.id = "forgot";
  link.href = "/reset-password";
  link.textContent = "Forgot your password?";
  link.addEventListener("click", () => {
    link.hash = email.value ? "email=" + encodeURIComponent(email.value) : "";
  });
  const line = document.createElement("p");
  line.append(link);
  return line;
}

function field(label, attributes) {
  const wrapper = document.createElement("label");
  const input = document.createElement("input");
  for (const [name, value] of Object.entries(attributes)) input.setAttribute(name, value);
  input.required = true;
  wrapper.append(label + " ", input);
  return wrapper;
}

// Another tab signed in, out, or refreshed.
addEventListener("storage", (event) => {
  if (event.key !== ACCESS && event.key !== null) return;
  const form = document.getElementById("login");
  if (accessToken()) {
    scheduleRenewal();
    if (prompt && form?.signedInElsewhere) form.signedInElsewhere();
  } else if (pageUser !== null && !prompt) {
    signIn("Signed out in another tab.");
  }
});

scheduleRenewal();
