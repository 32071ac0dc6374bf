"""The browser page served at GET / by `sortnet serve`: drop/pick images or use the camera, see top-3 bars.

Kept as a Python string so it ships inside the package without package-data settings. No external
scripts, fonts or CDNs (works offline); class names are inserted with textContent, never as HTML.

Usage:
    from sortnet.serve.page import PAGE_HTML
"""
from __future__ import annotations

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sortnet</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  #info { color: #666; font-size: .9rem; margin-bottom: 1rem; }
  #drop { border: 2px dashed #999; border-radius: 8px; padding: 2rem; text-align: center; cursor: pointer; }
  #drop.over { border-color: #2a7; background: #efe; }
  .tabs button { margin-right: .5rem; padding: .4rem .9rem; }
  .card { display: flex; gap: 1rem; align-items: center; margin: .8rem 0; padding: .6rem;
          border: 1px solid #ddd; border-radius: 8px; }
  .card img, video { max-width: 160px; max-height: 160px; border-radius: 4px; }
  .bars { flex: 1; }
  .row { display: flex; align-items: center; gap: .5rem; margin: .2rem 0; }
  .name { width: 9rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { flex: 1; background: #eee; height: .9rem; border-radius: 3px; }
  .fill { background: #2a7; height: 100%; border-radius: 3px; }
  .pct { width: 3.5rem; text-align: right; font-variant-numeric: tabular-nums; }
  .error { color: #b00; }
  .unknown { font-weight: 600; color: #8a5a00; margin-bottom: 4px; }
  #camera { display: none; }
</style>
</head>
<body>
<h1>sortnet</h1>
<div id="info">loading model info...</div>
<div class="tabs">
  <button id="tab-files" type="button">Images</button>
  <button id="tab-camera" type="button">Camera</button>
</div>
<section id="files">
  <div id="drop">Drop images here, or click to pick files
    <input id="picker" type="file" accept="image/*" multiple hidden>
  </div>
  <div id="results"></div>
</section>
<section id="camera">
  <p><button id="cam-start" type="button">Start camera</button>
     <button id="cam-stop" type="button">Stop</button> <span id="cam-fps"></span></p>
  <div class="card"><video id="video" autoplay playsinline muted></video><div class="bars" id="cam-bars"></div></div>
</section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

function bars(container, predictions, res) {
  container.replaceChildren();
  if (res && res.unknown) {  // none of the classes: say so, the closest class stays in the bars below
    const note = document.createElement("div"); note.className = "unknown";
    note.textContent = "unknown (closest: " + res.class + ")"; container.append(note);
  }
  for (const p of predictions.slice(0, 3)) {
    const row = document.createElement("div"); row.className = "row";
    const name = document.createElement("span"); name.className = "name"; name.textContent = p.class;
    name.title = p.class;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill";
    fill.style.width = (100 * p.probability).toFixed(1) + "%"; track.append(fill);
    const pct = document.createElement("span"); pct.className = "pct";
    pct.textContent = (100 * p.probability).toFixed(1) + "%";
    row.append(name, track, pct); container.append(row);
  }
}

async function classify(blob, name) {
  const form = new FormData(); form.append("file", blob, name || "image");
  const r = await fetch("predict?top_k=3", { method: "POST", body: form });
  const body = await r.json().catch(() => ({ detail: "HTTP " + r.status }));
  if (!r.ok) throw new Error(body.detail || ("HTTP " + r.status));
  return body;
}

async function addFile(file) {
  const card = document.createElement("div"); card.className = "card result";
  const img = document.createElement("img"); img.alt = file.name; img.src = URL.createObjectURL(file);
  const out = document.createElement("div"); out.className = "bars"; out.textContent = "classifying...";
  card.append(img, out); $("results").prepend(card);
  try { const res = await classify(file, file.name); bars(out, res.predictions, res); card.dataset.label = res.class; }
  catch (e) { out.className = "bars error"; out.textContent = e.message; }
}

function handleFiles(list) { for (const f of list) addFile(f); }
const drop = $("drop");
drop.addEventListener("click", () => $("picker").click());
$("picker").addEventListener("change", (e) => { handleFiles(e.target.files); e.target.value = ""; });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over");
                                        handleFiles(e.dataTransfer.files); });

let stream = null, running = false;
async function cameraLoop() {
  const video = $("video"), canvas = document.createElement("canvas");
  let last = performance.now(), fps = 0;
  while (running) {
    if (video.videoWidth === 0) { await new Promise((r) => setTimeout(r, 100)); continue; }
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.9));
    try { const res = await classify(blob, "frame.jpg"); bars($("cam-bars"), res.predictions, res); }
    catch (e) { $("cam-bars").textContent = e.message; await new Promise((r) => setTimeout(r, 500)); }
    const now = performance.now(); fps = 0.9 * fps + 0.1 * (1000 / (now - last)); last = now;
    $("cam-fps").textContent = fps.toFixed(1) + " frames/s";
  }
}
$("cam-start").addEventListener("click", async () => {
  if (running) return;
  try { stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false }); }
  catch (e) { $("cam-bars").textContent = "camera unavailable: " + e.message; return; }
  $("video").srcObject = stream; running = true; cameraLoop();
});
$("cam-stop").addEventListener("click", () => {
  running = false; if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
});
function show(which) {
  $("files").style.display = which === "files" ? "block" : "none";
  $("camera").style.display = which === "camera" ? "block" : "none";
  if (which !== "camera") $("cam-stop").click();
}
$("tab-files").addEventListener("click", () => show("files"));
$("tab-camera").addEventListener("click", () => show("camera"));

fetch("model").then((r) => r.json()).then((m) => {
  const acc = m.metrics && m.metrics.test ? ", test accuracy " + (100 * m.metrics.test.accuracy).toFixed(1) + "%" : "";
  $("info").textContent = m.num_classes + " classes (" + m.classes.slice(0, 12).join(", ") +
    (m.classes.length > 12 ? ", ..." : "") + "), " + m.input.img_size + " px" + acc + ", " + m.runtime;
  if (m.report) {
    const link = document.createElement("a"); link.id = "report-link"; link.href = m.report;
    link.textContent = "model report"; $("info").append(" \u00b7 ", link);
  }
}).catch(() => { $("info").textContent = "model info unavailable"; });
</script>
</body>
</html>
"""
