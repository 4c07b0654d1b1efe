// The single page's script: plain JavaScript, no build step.
//
// It never sees a token or the session cookie (HttpOnly). fetch sends the
// cookie to the same origin, Gatehouse checks it and calls Django with a
// signed token. A 401 means the session is gone: sign in again and come back.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(path, init = {}) {
  const resp = await fetch(path, {
    ...init,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(init.headers || {}) },
  });
  if (resp.status === 401) {
    const here = location.pathname + location.search;
    location.assign("/oauth2/start?rd=" + encodeURIComponent(here));
    throw new Error("not signed in");
  }
  if (!resp.ok) {
    throw new Error(`${init.method || "GET"} ${path}: HTTP ${resp.status}`);
  }
  return resp.json();
}

function clear() {
  for (const id of ["me-username", "me-sub", "me-email", "me-groups", "me-client"]) {
    $(id).textContent = "";
  }
  $("whoami").dataset.state = "loading";
  $("notes").replaceChildren();
  $("notes").dataset.state = "loading";
}

async function showWhoAmI() {
  const me = await api("/api/whoami");
  $("me-username").textContent = me.username;
  $("me-sub").textContent = me.sub;
  $("me-email").textContent = me.email;
  $("me-groups").textContent = me.groups.join(", ");
  $("me-client").textContent = me.client_id;
  $("whoami").dataset.state = "ok";
}

async function showNotes() {
  const notes = await api("/api/notes");
  $("notes").replaceChildren(
    ...notes.map((n) => {
      const li = document.createElement("li");
      li.textContent = n.text; // text, never HTML
      return li;
    })
  );
  $("notes").dataset.state = "ok";
}

async function refresh() {
  clear();
  try {
    await Promise.all([showWhoAmI(), showNotes()]);
  } catch (err) {
    $("status").textContent = err.message;
    $("whoami").dataset.state = "error";
  }
}

$("note-fetch-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("note-fetch-text");
  try {
    await api("/api/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: input.value }),
    });
    input.value = "";
    await showNotes();
  } catch (err) {
    $("status").textContent = err.message;
  }
});

if (new URLSearchParams(location.search).get("error") === "note") {
  $("status").textContent = "The note was not saved: it must be 1 to 500 characters.";
}

// A page restored from the back/forward cache must not keep showing what it
// showed before: ask again, and a signed-out user goes to the login.
window.addEventListener("pageshow", (ev) => {
  if (ev.persisted) {
    refresh();
  }
});

refresh();
