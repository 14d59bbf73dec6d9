// `/reset-password`: asking for a password-reset link, and choosing the new password with one.
//
// The reset mail links to `/reset-password#token=...`: the token travels in the URL's fragment,
// which the browser never sends to a server, so no access log, proxy or Referer holds it. The
// page takes it out of the address bar and the history as soon as it has read it, and sends it
// only in the body of `POST /api/v1/auth/password-reset/confirm`. Without a token it shows the
// form that asks for a link (`POST /api/v1/auth/password-reset`), filled in from `#email=...`
// when the sign-in form's "Forgot your password?" had an address typed.
//
// This page does not load session.js: nobody is signed in here, and session.js takes a
// `#token=` fragment for an access token to sign in with. A reset ends every session of the
// account, so afterwards the sign-in form (on any page) asks for the new password.

const ask = document.getElementById("ask");
const choose = document.getElementById("choose");

const fragment = new URLSearchParams(location.hash.slice(1));
const token = fragment.get("token");
if (location.hash) history.replaceState(null, "", location.pathname + location.search);
// A link followed into this very page only changes its fragment: start again with the new one.
addEventListener("hashchange", () => location.reload());

if (token) {
  choose.hidden = false;
  choose.elements.password.focus();
} else {
  showAsk(fragment.get("email") || "", "");
}

function showAsk(email, notice) {
  choose.hidden = true;
  ask.hidden = false;
  ask.elements.email.value = email;
  say(ask, notice);
  ask.elements.email.focus();
}

function say(form, text) {
  form.querySelector(".notice").textContent = text;
}

// The server's messages are lower-case clauses ("this reset link has expired; ask for a new
// one"); shown alone, they read as sentences.
function sentence(text) {
  return text && `${text[0].toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? "" : "."}`;
}

function showDone(title, text, linkText) {
  ask.hidden = true;
  choose.hidden = true;
  document.getElementById("done-title").textContent = title;
  document.getElementById("done-text").textContent = text;
  document.getElementById("done-link").textContent = linkText;
  document.getElementById("done").hidden = false;
}

/** POST `body` as JSON; the response, or null when the server cannot be reached. */
async function post(path, body) {
  try {
    return await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    return null;
  }
}

/** The server's `{"error": {"code", "message"}}`, or one of ours when there is none. */
async function errorOf(response) {
  if (!response) return { code: "offline", message: "The server cannot be reached; try again." };
  const body = await response.json().catch(() => null);
  const error = body?.error || { code: "error", message: response.statusText || "the request failed" };
  return { code: error.code, message: sentence(error.message) };
}

// Submit handlers run one request at a time per form.
function onSubmit(form, handle) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await handle(new FormData(form));
    } finally {
      button.disabled = false;
    }
  });
}

onSubmit(ask, async (fields) => {
  const email = fields.get("email");
  const response = await post("/api/v1/auth/password-reset", { email });
  if (!response?.ok) {
    say(ask, (await errorOf(response)).message);
    return;
  }
  // The same answer whether or not an account has the address: the server tells nobody.
  const { message } = await response.json();
  showDone("Check your e-mail", sentence(message), "Back to sign in");
});

onSubmit(choose, async (fields) => {
  const password = fields.get("password");
  if (password !== fields.get("again")) {
    say(choose, "The two passwords differ; type the same one twice.");
    return;
  }
  say(choose, "");
  const response = await post("/api/v1/auth/password-reset/confirm", { token, password });
  if (response?.ok) {
    showDone(
      "Your password is set",
      "Every session of your account has ended, on every device: sign in with the new password.",
      "Sign in",
    );
    return;
  }
  const error = await errorOf(response);
  if (error.code?.startsWith("reset_token_")) {
    // This link will never work again (used, expired, or not one we sent): ask for another.
    showAsk("", error.message);
  } else if (response?.status === 422) {
    // The password breaks the rules of registration; the server names the rule.
    say(choose, `This password cannot be used: ${error.message}`);
  } else {
    say(choose, error.message);
  }
});
