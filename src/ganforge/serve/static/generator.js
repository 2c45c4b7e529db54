"use strict";
// The generator page: every image is fetched from a GET endpoint whose query holds all the controls, so the
// errors the API returns as JSON can be shown, and the URL alone reproduces the image.
const $ = (id) => document.getElementById(id);
let info = null;
let current = { seed: 0, z: null }; // z: an imported latent as text; null while rendering a seed
const objectUrls = {};
const timers = {};

function debounce(name, fn, ms = 150) {
  clearTimeout(timers[name]);
  timers[name] = setTimeout(fn, ms);
}

function showError(message) { $("error").textContent = message || ""; }

function randomSeed() {
  const value = new Uint32Array(1);
  crypto.getRandomValues(value);
  return value[0] % (info.limits.seed_max + 1);
}

function psi() { return Number($("psi").value).toFixed(2); }

// A conditional generator draws every image in the selected class; {} for an unconditional one.
function classParam() { return info.classes.length ? { class: $("class").value } : {}; }

// The sliders' non-zero amounts as the API's edit parameter ("0:1.5,3:-2"); {} when nothing is moved.
function editParam() {
  if (!info.directions) return {};
  const moved = [...document.querySelectorAll("#sliders input")]
    .filter((slider) => Number(slider.value) !== 0)
    .map((slider) => `${slider.dataset.index}:${Number(slider.value).toFixed(1)}`);
  return moved.length ? { edit: moved.join(",") } : {};
}

// The page's own URL holds its state (seed, psi, class, edit), so a link reproduces the image.
function keepStateInUrl() {
  const state = new URLSearchParams();
  if (current.z === null) state.set("seed", current.seed);
  state.set("psi", psi());
  for (const [key, value] of Object.entries({ ...classParam(), ...editParam() })) state.set(key, value);
  history.replaceState(null, "", "?" + state);
}

function restoreStateFromUrl() {
  const state = new URLSearchParams(location.search);
  const seed = Math.floor(Number(state.get("seed") ?? 0));
  if (state.has("psi") && info.truncation) {
    $("psi").value = Number(state.get("psi"));
    $("psi-value").textContent = psi();
  }
  if (state.has("class") && info.classes.includes(state.get("class"))) $("class").value = state.get("class");
  for (const pair of (state.get("edit") || "").split(",").filter(Boolean)) {
    const [index, amount] = pair.split(":");
    const slider = document.querySelector(`#sliders input[data-index="${Number(index)}"]`);
    if (slider) { slider.value = Number(amount); slider.oninput({ quiet: true }); }
  }
  return Number.isFinite(seed) && seed >= 0 && seed <= info.limits.seed_max ? seed : 0;
}

function buildSliders() {
  const d = info.directions;
  $("directions-meta").textContent = `${d.method}${d.score ? " of " + d.score : ""}, in ${d.space}` +
    (d.layers ? ` (style layers ${d.layers[0]}-${d.layers[1] - 1})` : "");
  for (let index = 0; index < d.sliders; index++) {
    const row = document.createElement("div");
    row.className = "row";
    const id = `direction-${index}`;
    row.innerHTML = `<label for="${id}">direction ${index}</label>` +
      `<input type="range" id="${id}" data-index="${index}" min="-3" max="3" step="0.1" value="0">` +
      `<span id="${id}-value">0.0</span>`;
    $("sliders").append(row);
    const slider = row.querySelector("input");
    slider.oninput = (event) => {
      $(`${id}-value`).textContent = Number(slider.value).toFixed(1);
      if (!(event && event.quiet)) debounce("edit", render);
    };
  }
  $("directions").hidden = false;
  $("reset-edits").onclick = () => {
    for (const slider of document.querySelectorAll("#sliders input")) {
      slider.value = 0;
      slider.oninput({ quiet: true });
    }
    render();
  };
}

async function showImage(imgId, url) {
  const response = await fetch(url);
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: response.statusText }));
    showError(body.error);
    return false;
  }
  const blob = await response.blob();
  const old = objectUrls[imgId];
  objectUrls[imgId] = URL.createObjectURL(blob);
  $(imgId).src = objectUrls[imgId];
  if (old) URL.revokeObjectURL(old);
  showError("");
  return true;
}

function imageQuery(extra = {}) {
  const query = new URLSearchParams();
  if (current.z !== null) query.set("z", current.z); else query.set("seed", current.seed);
  query.set("psi", psi());
  for (const [key, value] of Object.entries({ ...classParam(), ...editParam(), ...extra })) query.set(key, value);
  query.set("v", info.nimg); // a new checkpoint gets new URLs, so no cache serves an old image
  return query;
}

async function render() {
  if (!(await showImage("image", "/api/image.png?" + imageQuery()))) return;
  const edit = editParam().edit;
  const what = (current.z !== null ? "imported latent" : `seed ${current.seed}`) +
    (info.classes.length ? ` · class ${$("class").value}` : "") + (edit ? ` · edit ${edit}` : "");
  $("image").dataset.edit = edit || "";
  keepStateInUrl();
  $("caption").textContent = `${what} · ψ ${psi()} · synthetic image from ${info.name} (kimg ${info.kimg})`;
  $("image").dataset.seed = current.z !== null ? "imported" : String(current.seed);
  $("image").dataset.class = info.classes.length ? $("class").value : "";
  const side = Math.max(info.image_shape[1], info.image_shape[2]);
  const scale = Math.min(info.limits.scale_max, Math.max(1, Math.floor(512 / side)));
  $("download").href = "/api/image.png?" + imageQuery({ scale });
  const classPart = info.classes.length ? `-class${$("class").value.replace(/[^\w.-]+/g, "_")}` : "";
  $("download").download = current.z !== null ? `ganforge-latent${classPart}-psi${psi()}.png`
                                               : `ganforge-seed${current.seed}${classPart}-psi${psi()}.png`;
}

function useSeed(seed) {
  current = { seed, z: null };
  $("seed").value = seed;
  return render();
}

function readSeed(id) {
  const value = Math.floor(Number($(id).value));
  if (!Number.isFinite(value) || value < 0 || value > info.limits.seed_max) {
    showError(`${id}: give a whole number from 0 to ${info.limits.seed_max}`);
    return null;
  }
  return value;
}

async function interpolate(stripToo) {
  const a = readSeed("seed-a"), b = readSeed("seed-b");
  if (a === null || b === null) return;
  // The class stays fixed along the path: only z moves.
  const common = { seed: a, seed_b: b, psi: psi(), method: $("method").value, ...classParam(), v: info.nimg };
  await showImage("between", "/api/image.png?" + new URLSearchParams({ ...common, t: $("t").value }));
  if (stripToo) await showImage("strip", "/api/strip.png?" + new URLSearchParams({ ...common, frames: 8 }));
}

async function exportLatent() {
  if (current.z !== null) { $("latent").value = current.z; return; }
  const response = await fetch(`/api/latent?seed=${current.seed}`);
  const body = await response.json();
  if (!response.ok) { showError(body.error); return; }
  $("latent").value = body.z;
}

async function start() {
  info = await (await fetch("/api/info")).json();
  $("meta").textContent = `${info.name} · ${info.model} · z ${info.z_dim} · ` +
    `${info.image_shape.join("×")} · kimg ${info.kimg}`;
  if (!info.has_run_page) $("run-link").hidden = true;
  for (const id of ["seed", "seed-a", "seed-b"]) $(id).max = info.limits.seed_max;
  $("psi").min = info.limits.psi_min;
  $("psi").max = info.limits.psi_max;
  if (!info.truncation) { // G normalises z (ProGAN): psi would change nothing, so the slider is fixed at 1
    $("psi").value = 1;
    $("psi").disabled = true;
    $("psi").title = "this generator normalises z, so truncation has no effect";
  }
  if (info.classes.length) { // conditional generators: every image request carries the selected class
    for (const name of info.classes) $("class").add(new Option(name, name));
    $("class-row").hidden = false;
    $("class").onchange = () => { render(); interpolate(true); };
  }
  $("generate").onclick = () => {
    const noise = document.querySelector("input[name=noise]:checked").value;
    return noise === "random" ? useSeed(randomSeed()) : render();
  };
  $("randomise").onclick = () => useSeed(randomSeed());
  $("seed").onchange = () => { const s = readSeed("seed"); if (s !== null) useSeed(s); };
  $("psi").oninput = () => {
    $("psi-value").textContent = psi();
    debounce("psi", () => { render(); interpolate(true); });
  };
  $("export").onclick = exportLatent;
  $("import").onclick = () => { current = { seed: null, z: $("latent").value.trim() }; render(); };
  if (info.directions) buildSliders();
  $("interpolate").onclick = () => interpolate(true);
  $("method").onchange = () => interpolate(true);
  $("t").oninput = () => {
    $("t-value").textContent = Number($("t").value).toFixed(2);
    debounce("t", () => interpolate(false), 60);
  };
  await useSeed(restoreStateFromUrl());
  await interpolate(true);
}

start().catch((error) => showError(`could not reach the server: ${error}`));
