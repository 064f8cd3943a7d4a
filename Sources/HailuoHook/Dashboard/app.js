// The dashboard: tasks newest first, live from /v1/events, a task's events, and a submit form.
"use strict";

const tasks = new Map();          // task_id -> task (without events)
let token = localStorage.getItem("hailuo-hook-token") || "";

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

// Calls the API; on 401 asks for the token once and tries again.
async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  let response = await fetch(path, opts);
  if (response.status === 401) {
    const given = window.prompt("This server needs its API token (api.token):");
    if (given) {
      token = given.trim();
      localStorage.setItem("hailuo-hook-token", token);
      opts.headers = headers(options && options.headers);
      response = await fetch(path, opts);
    }
  }
  return response;
}

function age(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h";
  return Math.floor(seconds / 86400) + " d";
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function render() {
  const filter = document.getElementById("filter").value;
  const body = document.getElementById("tasks");
  const rows = [...tasks.values()]
    .filter(t => !filter || t.status === filter)
    .sort((a, b) => b.created_at.localeCompare(a.created_at) || b.task_id.localeCompare(a.task_id));
  body.replaceChildren(...rows.map(task => {
    const tr = document.createElement("tr");
    tr.dataset.taskId = task.task_id;
    tr.appendChild(cell(task.task_id, "id"));
    const status = cell("");
    const badge = document.createElement("span");
    badge.className = "badge " + task.status;
    badge.textContent = task.status;
    status.appendChild(badge);
    tr.appendChild(status);
    const request = task.request || {};
    tr.appendChild(cell(request.model || "-"));
    const prompt = request.prompt || "";
    tr.appendChild(cell(prompt.length > 60 ? prompt.slice(0, 57) + "…" : prompt));
    tr.appendChild(cell(age(task.created_at)));
    const video = cell("");
    if (task.download_url) {
      const a = document.createElement("a");
      a.href = task.download_url;
      a.textContent = "video";
      a.target = "_blank";
      a.rel = "noopener";
      video.appendChild(a);
    } else if (task.status === "failed" && task.error) {
      video.textContent = task.error.status_msg || "failed";
      video.className = "error";
    }
    tr.appendChild(video);
    tr.addEventListener("click", () => showDetail(task.task_id));
    return tr;
  }));
  document.getElementById("empty").hidden = rows.length > 0;
}

async function load() {
  const response = await api("/v1/tasks?limit=500");
  if (!response.ok) return;
  const page = await response.json();
  for (const task of page.tasks) tasks.set(task.task_id, task);
  render();
}

async function showDetail(id) {
  const response = await api("/v1/tasks/" + encodeURIComponent(id));
  if (!response.ok) return;
  const task = await response.json();
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-id").textContent = id;
  document.getElementById("detail-events").replaceChildren(...task.events.map(e => {
    const li = document.createElement("li");
    li.textContent = `${e.at}  ${e.status} via ${e.via}` + (e.applied ? "" : ` (not applied: ${e.reason})`);
    return li;
  }));
}

function follow() {
  const live = document.getElementById("live");
  const url = "/v1/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");
  const source = new EventSource(url);
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  source.addEventListener("task", event => {
    const task = JSON.parse(event.data);
    tasks.set(task.task_id, task);
    render();
    const detail = document.getElementById("detail");
    if (!detail.hidden && document.getElementById("detail-id").textContent === task.task_id) showDetail(task.task_id);
  });
}

document.getElementById("filter").addEventListener("change", render);

document.getElementById("submit").addEventListener("submit", async event => {
  event.preventDefault();
  const form = event.target;
  const result = document.getElementById("submit-result");
  const body = {
    model: form.model.value,
    prompt: form.prompt.value,
    duration: Number(form.duration.value),
    resolution: form.resolution.value,
  };
  result.className = "note";
  result.textContent = "submitting…";
  const response = await api("/v1/video_generation", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.ok) {
    result.textContent = "submitted: task " + answer.task_id;
    form.prompt.value = "";
  } else {
    result.className = "note error";
    result.textContent = (answer.error && answer.error.message) || ("HTTP " + response.status);
  }
});

setInterval(render, 5000);  // ages move on
load().then(follow);
