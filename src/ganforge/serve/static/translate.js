"use strict";
// The translation page: the chosen file is sent as the body of POST /api/translate.png, the controls as the
// query; the API's JSON errors (too large, not an image, bad parameter) are shown as they come.
const $ = (id) => document.getElementById(id);
let info = null;
let outputUrl = null;

function showError(message) { $("error").textContent = message || ""; }

async function translate() {
  const file = $("file").files[0];
  if (!file) { showError("choose an image file first"); return; }
  if (file.size > info.limits.upload_bytes) {
    showError(`file: larger than the ${info.limits.upload_bytes >> 20} MB upload limit`);
    return;
  }
  const scale = Math.min(Math.max(1, Number($("scale").value) || 1), info.limits.scale_max);
  const query = new URLSearchParams({ direction: $("direction").value, crop: $("crop").value, scale });
  const response = await fetch(`/api/translate.png?${query}`, { method: "POST", body: file });
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: response.statusText }));
    showError(body.error);
    return;
  }
  if (outputUrl) URL.revokeObjectURL(outputUrl);
  outputUrl = URL.createObjectURL(await response.blob());
  $("output").src = outputUrl;
  $("download").href = outputUrl;
  $("caption").textContent = `${file.name}, ${$("direction").value}`;
  showError("");
}

async function start() {
  info = await (await fetch("/api/info")).json();
  $("meta").textContent = `${info.name}: ${info.model}, ${info.kimg} kimg`;
  for (const [name, shapes] of Object.entries(info.directions)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = `${name} (${shapes.input_shape.join("x")} → ${shapes.output_shape.join("x")})`;
    $("direction").appendChild(option);
  }
  $("scale").max = info.limits.scale_max;
  $("translate").addEventListener("click", translate);
}

start().catch((error) => showError(String(error)));
