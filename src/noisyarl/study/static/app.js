// The study page: log in with a participant code, then answer one image at a time.
// The code lives only in this page's memory; to resume, enter it again.
"use strict";

const state = { code: null, imageId: null, imageUrl: null };
const $ = (id) => document.getElementById(id);

function show(view) {
  for (const id of ["login-view", "question-view", "done-view"]) {
    $(id).hidden = id !== view;
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.code) headers["X-Participant-Code"] = state.code;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : "the server refused the request");
  }
  return response;
}

function buildButtons(options) {
  const box = $("answers");
  box.replaceChildren();
  for (const option of options) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "answer";
    button.dataset.value = String(option.value);
    button.textContent = option.text;
    button.addEventListener("click", () => submitAnswer(option.value));
    box.appendChild(button);
  }
}

function setButtonsEnabled(enabled) {
  for (const button of $("answers").querySelectorAll("button")) button.disabled = !enabled;
}

async function showProgress(progress) {
  if (progress.done) {
    show("done-view");
    return;
  }
  setButtonsEnabled(false);
  $("progress-text").textContent = `Image ${progress.answered + 1} of ${progress.total}`;
  $("progress").max = progress.total;
  $("progress").value = progress.answered;
  const response = await api("GET", `/api/images/${encodeURIComponent(progress.image_id)}`);
  const blob = await response.blob();
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageId = progress.image_id;
  state.imageUrl = URL.createObjectURL(blob);
  $("image").src = state.imageUrl;
  $("image").dataset.imageId = progress.image_id;
  show("question-view");
  setButtonsEnabled(true);
}

async function submitAnswer(choice) {
  setButtonsEnabled(false);
  showError("");
  try {
    const response = await api("POST", "/api/answers", { image_id: state.imageId, choice });
    await showProgress(await response.json());
  } catch (error) {
    showError(`${error.message}. Reloading your next image.`);
    try {
      await showProgress(await (await api("GET", "/api/next")).json());
    } catch (again) {
      showError(again.message);
    }
  }
}

async function login(event) {
  event.preventDefault();
  showError("");
  $("start").disabled = true;
  try {
    const response = await api("POST", "/api/session", { code: $("code").value });
    const session = await response.json();
    state.code = session.code;
    $("question").textContent = session.question.text;
    buildButtons(session.question.options);
    await showProgress(session);
  } catch (error) {
    state.code = null;
    showError(error.message);
  } finally {
    $("start").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
});
