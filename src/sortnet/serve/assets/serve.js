"use strict";
const $ = (id) => document.getElementById(id);

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
