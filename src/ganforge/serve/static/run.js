"use strict";
// The training-run page: re-reads the run's status every few seconds and reloads an image only when its file
// changed (the URL carries the file's mtime, so the browser cache never shows a stale grid).
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;
const shown = {};

async function refresh() {
  const status = await (await fetch("/api/run/status")).json();
  if (!status.run) {
    $("meta").textContent = "this server shows an exported generator; there is no training run to follow";
    return false;
  }
  $("meta").textContent = status.name;
  const last = status.latest;
  $("stats").textContent = last ? Object.entries(last).map(([k, v]) =>
    `${k} ${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v}`).join(" · ") : "no tick logged yet";
  for (const name of ["samples", "loss", "metrics"]) {
    const mtime = status.files[name];
    if (mtime !== null && mtime !== shown[name]) {
      $(name).src = `/api/run/${name}.png?v=${mtime}`;
      shown[name] = mtime;
    }
  }
  $("refreshed").textContent = `refreshed ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;
  return true;
}

async function loop() {
  try {
    if (!(await refresh())) return;
  } catch (error) {
    $("refreshed").textContent = `server unreachable (${error}); retrying`;
  }
  setTimeout(loop, REFRESH_MS);
}

loop();
