"use strict";
/* sortnet studio: classes (sub-folders), webcam bursts and files into a class, Train, live prediction in the
   page (onnxruntime-web; the server's /api/predict when WebAssembly is missing), corrections, a drawing
   canvas for small grey models, downloads. Every POST carries the session token from the page's meta tag.
   Names go in with textContent, never as HTML. */
const $ = (id) => document.getElementById(id);
const TOKEN = document.querySelector('meta[name="sortnet-token"]').content;
const BURST_MS = 100, BATCH = 16;  // a held Record button takes a frame every 100 ms, sent 16 at a time
const S = { classes: [], model: null, runs: -1, runner: null, backbone: null, stream: null, live: false,
            pending: [], sending: false, recording: null };

async function api(path, opts = {}) {
  const headers = Object.assign({ "X-Sortnet-Token": TOKEN }, opts.headers || {});
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  const body = await r.json().catch(() => ({ detail: "HTTP " + r.status }));
  if (!r.ok) throw new Error(body.detail || ("HTTP " + r.status));
  return body;
}
const postJSON = (path, data) => api(path, { method: "POST", body: JSON.stringify(data),
                                             headers: { "Content-Type": "application/json" } });
function el(tag, props = {}, ...kids) { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; }

/* ---------- classes ---------- */
function renderClasses() {
  const box = $("classes"); box.replaceChildren();
  for (const c of S.classes) {
    const card = el("div", { className: "class" }); card.dataset.name = c.name;
    const rec = el("button", { type: "button", className: "record", textContent: "Hold to record" });
    const pick = el("input", { type: "file", accept: "image/*", multiple: true, hidden: true, className: "pick" });
    const pickBtn = el("button", { type: "button", textContent: "Add files" });
    const rename = el("button", { type: "button", className: "rename", textContent: "Rename" });
    const thumbs = el("div", { className: "thumbs" });
    for (const name of c.recent) {
      const img = el("img", { alt: name, title: name + " (click to move to the trash)", loading: "lazy" });
      img.src = "api/image/" + encodeURIComponent(c.name) + "/" + encodeURIComponent(name);
      img.addEventListener("click", () => trash(c.name, name));
      thumbs.append(img);
    }
    card.append(el("header", {}, el("span", { className: "label", textContent: c.name }),
                   el("span", { className: "count", textContent: c.count + " images" }), rec, pickBtn, pick, rename), thumbs);
    rec.addEventListener("pointerdown", (e) => { e.preventDefault(); startBurst(c.name, rec); });
    if (S.recording && S.recording.cls === c.name) rec.classList.add("on");
    pickBtn.addEventListener("click", () => pick.click());
    pick.addEventListener("change", () => { upload(c.name, Array.from(pick.files)); pick.value = ""; });
    rename.addEventListener("click", async () => {
      const to = prompt("new name for " + c.name, c.name);
      if (to && to !== c.name) { try { await postJSON("api/classes/rename", { old: c.name, new: to }); } catch (e) { alert(e.message); } refresh(); }
    });
    card.addEventListener("dragover", (e) => { e.preventDefault(); card.classList.add("over"); });
    card.addEventListener("dragleave", () => card.classList.remove("over"));
    card.addEventListener("drop", (e) => { e.preventDefault(); card.classList.remove("over"); upload(c.name, Array.from(e.dataTransfer.files)); });
    box.append(card);
  }
  const sel = $("correct-class"), keep = sel.value; sel.replaceChildren();
  for (const c of S.classes) sel.append(el("option", { value: c.name, textContent: c.name }));
  if (keep) sel.value = keep;
}

async function upload(cls, blobs) {
  for (let i = 0; i < blobs.length; i += BATCH) {
    const form = new FormData();
    blobs.slice(i, i + BATCH).forEach((b, j) => form.append("files", b, b.name || ("frame" + j + ".jpg")));
    try { await api("api/images?cls=" + encodeURIComponent(cls), { method: "POST", body: form }); }
    catch (e) { $("cam-status").textContent = e.message; }
  }
  refresh();
}
async function trash(cls, name) {
  if (!confirm("Move " + name + " to the trash (DIR/.sortnet-trash)?")) return;
  try { await postJSON("api/trash", { cls, name }); } catch (e) { alert(e.message); }
  refresh();
}
$("new-class-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("new-class").value.trim(); if (!name) return;
  try { await postJSON("api/classes", { name }); $("new-class").value = ""; } catch (err) { alert(err.message); }
  refresh();
});

/* ---------- camera and bursts ---------- */
async function startCamera() {
  if (S.stream) return true;
  try { S.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false }); }
  catch (e) { $("cam-status").textContent = "camera unavailable: " + e.message; return false; }
  $("video").srcObject = S.stream; $("cam-status").textContent = "camera on";
  liveLoop();
  return true;
}
$("cam-start").addEventListener("click", startCamera);

function frameCanvas() {
  const v = $("video"); if (!v.videoWidth) return null;
  const c = el("canvas", { width: v.videoWidth, height: v.videoHeight });
  c.getContext("2d").drawImage(v, 0, 0); return c;
}
const toJpeg = (canvas) => new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.92));

async function flush(cls) {
  if (S.sending) return; S.sending = true;
  try { while (S.pending.length) await upload(cls, S.pending.splice(0, BATCH)); } finally { S.sending = false; }
}
async function startBurst(cls, button) {
  if (!(await startCamera()) || S.recording) return;
  button.classList.add("on");
  const timer = setInterval(async () => {
    const c = frameCanvas(); if (!c) return;
    S.pending.push(await toJpeg(c));
    if (S.pending.length >= BATCH) flush(cls);
  }, BURST_MS);
  S.recording = { timer, cls };
}
function stopBurst() {  // on window: the class cards are redrawn while recording, the button may be a new one
  if (!S.recording) return;
  const { timer, cls } = S.recording; clearInterval(timer); S.recording = null;
  for (const b of document.querySelectorAll(".record.on")) b.classList.remove("on");
  setTimeout(() => flush(cls), BURST_MS + 50);  // the last frame's JPEG encode may still be running
}
for (const ev of ["pointerup", "pointercancel", "blur"]) window.addEventListener(ev, stopBurst);

/* ---------- training ---------- */
$("train").addEventListener("click", async () => {
  try { await api("api/train", { method: "POST" }); $("train-status").textContent = "training..."; poll(); }
  catch (e) { $("train-status").textContent = e.message; }
});
async function poll() {
  await refresh();
  const t = S.training;
  if (t && t.state === "running") setTimeout(poll, 300);
}
function showTraining(t) {
  S.training = t;
  const frac = t.state === "done" ? 1 : t.total ? t.done / t.total : 0;
  $("train-bar").style.width = (100 * (t.stage === "head" ? Math.max(frac, 0.95) : 0.9 * frac)).toFixed(0) + "%";
  if (t.state === "running") $("train-status").textContent = t.stage + " " + t.done + "/" + t.total;
  else if (t.state === "error") $("train-status").textContent = "error: " + t.error;
  else if (t.state === "done" && t.result) $("train-status").textContent = "trained on " + t.result.images +
    " images (" + t.result.new_images + " new) in " + t.result.seconds + " s, cross-validated accuracy " +
    (100 * t.result.cv_accuracy).toFixed(1) + "%";
}

/* ---------- possibly mislabelled (after each training) ---------- */
async function pollSuspects(runs) {
  const st = await api("api/suspects");
  if (st.runs !== runs || st.state === "running" || st.state === "none") { setTimeout(() => pollSuspects(runs), 500); return; }
  renderSuspects(st);
}
function renderSuspects(st) {
  const box = $("suspects"); box.replaceChildren(); $("suspects-box").hidden = false;
  $("suspects-status").textContent = st.state === "error" ? "(" + st.error + ")" :
    "(" + st.suspects.length + " listed; about " + st.estimated_errors + " wrong labels among " + st.images + " images)";
  box.dataset.runs = String(st.runs);
  for (const s of st.suspects) {
    const [cls, name] = [s.path.slice(0, s.path.indexOf("/")), s.path.slice(s.path.indexOf("/") + 1)];
    const img = el("img", { alt: s.path, loading: "lazy" });
    img.src = "api/image/" + encodeURIComponent(cls) + "/" + encodeURIComponent(name);
    const move = el("button", { type: "button", className: "move", textContent: "move to " + s.suggested });
    const leave = el("button", { type: "button", className: "leave", textContent: "leave it" });
    const card = el("div", { className: "suspect" }, img,
      el("div", { textContent: "given: " + s.given }), el("div", { textContent: "suggested: " + s.suggested }),
      el("div", { textContent: "label quality " + s.score.toFixed(3) }), move, leave);
    card.dataset.path = s.path;
    const act = async (what) => {
      try { await postJSON("api/suspects/" + what, { path: s.path }); card.remove(); refresh(); }
      catch (e) { alert(e.message); }
    };
    move.addEventListener("click", () => act("move"));
    leave.addEventListener("click", () => act("leave"));
    box.append(card);
  }
}

/* ---------- the model in the page ---------- */
async function loadModel(m) {
  S.runner = null; $("runtime").textContent = "(loading...)";
  try {
    if (!InBrowser.available()) throw new Error("no WebAssembly");
    if (m.kind === "backbone") {
      S.runner = await loadInBrowser({ kind: "backbone", session: await preloadBackbone(m.prep.img_size), prep: m.prep,
                                       head: m.head, unknown: m.unknown, bank: await unknownBank(m.unknown) });
    } else {
      S.runner = await loadInBrowser({ kind: "graph", url: "api/model.onnx", prep: m.prep, unknown: m.unknown });
    }
    $("runtime").textContent = "(in the browser, WebAssembly)";
  } catch (e) {
    S.runner = { spec: { prep: m.prep }, server: true };
    $("runtime").textContent = "(on the server: " + e.message + ")";
  }
  document.body.dataset.runs = String(S.runs);
}
/* The knn bank of the studio's unknown scorer (float32 [bank, dim]); null (never unknown) when the model has no
   scorer, or a retrain replaced the bank between the state and this fetch (the next state loads the new one). */
async function unknownBank(u) {
  if (!u) return null;
  const buf = await (await fetch("api/unknown-bank.bin")).arrayBuffer();
  return buf.byteLength === 4 * u.bank * u.dim ? new Float32Array(buf) : null;
}
/* The backbone never changes in a session: it is loaded (and run once on a blank image, which warms
   onnxruntime-web's kernels) when the page opens, so a Train waits only for the head. */
function preloadBackbone(size) {
  if (!S.backbone) {
    S.backbone = InBrowser.session("api/backbone.onnx").then(async (session) => {
      const x = new Float32Array(2 * 3 * size * size);
      await session.run({ x: new ort.Tensor("float32", x, [2, 3, size, size]) });
      return session;
    });
    S.backbone.catch(() => { S.backbone = null; });  // tried again at the next model
  }
  return S.backbone;
}
/* One prediction in the server's JSON shape: {class, probability, predictions, unknown, unknown_score}. */
async function predictImageData(data) {
  const m = S.model, r = S.runner; if (!r) return null;
  if (r.server) {
    const c = el("canvas", { width: data.width, height: data.height }); c.getContext("2d").putImageData(data, 0, 0);
    return api("api/predict", { method: "POST", body: await new Promise((ok) => c.toBlob(ok, "image/png")) });
  }
  const { probs, score } = await r.run(modelInput(data, m.prep).data);
  const predictions = topK(probs, m.classes, m.classes.length);
  return { class: predictions[0].class, probability: predictions[0].probability, predictions,
           unknown: r.isUnknown(score), unknown_score: score };
}
function showPrediction(box, res) {  // the serve page's look: bars, "unknown (closest: X)" above them
  bars(box, res.predictions, res);
  box.dataset.label = res.class; box.dataset.unknown = String(!!res.unknown);
}
async function predictUrl(url) {  // used by the parity test: the same file `sortnet predict` reads
  const blob = await (await fetch(url)).blob();
  const bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const c = el("canvas", { width: bmp.width, height: bmp.height }), ctx = c.getContext("2d");
  ctx.drawImage(bmp, 0, 0);
  return predictImageData(ctx.getImageData(0, 0, bmp.width, bmp.height));
}
window.sortnetStudio = { predictUrl, state: S };

async function liveLoop() {
  if (S.live) return; S.live = true;
  let last = performance.now(), fps = 0;
  while (S.stream) {
    const c = S.runner && S.model && frameCanvas();
    if (!c) { await new Promise((r) => setTimeout(r, 150)); continue; }
    try {
      const res = await predictImageData(c.getContext("2d").getImageData(0, 0, c.width, c.height));
      if (res) showPrediction($("live-bars"), res);
    } catch (e) { $("live-bars").textContent = e.message; await new Promise((r) => setTimeout(r, 500)); }
    await new Promise((r) => setTimeout(r, 0));  // a macrotask between frames: the page stays responsive
    const now = performance.now(); fps = 0.9 * fps + 0.1 * (1000 / (now - last)); last = now;
    $("live-fps").textContent = fps.toFixed(1) + " frames/s"; $("live-fps").dataset.fps = fps.toFixed(2);
  }
  S.live = false;
}
$("correct").addEventListener("click", async () => {
  const c = frameCanvas(), cls = $("correct-class").value;
  if (!c || !cls) { $("correct-status").textContent = "no camera frame"; return; }
  await upload(cls, [await toJpeg(c)]);
  $("correct-status").textContent = "saved into " + cls + "; press Train to learn it";
});

/* ---------- drawing canvas (small grey models) ---------- */
function setupCanvas(prep) {
  const cv = $("draw"), ctx = cv.getContext("2d"), light = prep.background === "light";
  const clear = () => { ctx.fillStyle = light ? "#fff" : "#000"; ctx.fillRect(0, 0, cv.width, cv.height); $("draw-bars").textContent = ""; };
  if (!cv.dataset.ready) {
    let down = false, queued = false;
    const at = (e) => { const r = cv.getBoundingClientRect(); return [(e.clientX - r.left) * cv.width / r.width, (e.clientY - r.top) * cv.height / r.height]; };
    const predict = () => { if (queued) return; queued = true; requestAnimationFrame(async () => {
      queued = false; const res = await predictImageData(ctx.getImageData(0, 0, cv.width, cv.height));
      if (res) showPrediction($("draw-bars"), res); }); };
    cv.addEventListener("pointerdown", (e) => { down = true; cv.setPointerCapture(e.pointerId); ctx.beginPath(); ctx.moveTo(...at(e)); });
    cv.addEventListener("pointermove", (e) => { if (!down) return; ctx.lineTo(...at(e)); ctx.stroke(); predict(); });
    cv.addEventListener("pointerup", () => { down = false; predict(); });
    $("clear").addEventListener("click", clear);
    cv.dataset.ready = "1";
  }
  ctx.strokeStyle = light ? "#000" : "#fff"; ctx.lineWidth = 24; ctx.lineCap = ctx.lineJoin = "round";
  clear();
}

/* ---------- downloads ---------- */
for (const b of document.querySelectorAll("#downloads button")) {
  b.addEventListener("click", async () => {
    $("download-status").textContent = "making " + b.textContent + "...";
    try { const r = await api("api/export/" + b.dataset.kind, { method: "POST" });
          $("download-status").textContent = ""; location.href = r.download; }
    catch (e) { $("download-status").textContent = e.message; }
  });
}

/* ---------- state ---------- */
async function refresh() {
  const st = await api("api/state");
  S.classes = st.classes; renderClasses(); showTraining(st.training);
  if (st.backbone && InBrowser.available()) preloadBackbone(st.backbone.img_size).catch(() => {});
  $("info").textContent = st.folder + ": " + st.classes.length + " classes, " +
    st.classes.reduce((t, c) => t + c.count, 0) + " images";
  const runs = st.model ? st.model.kind + st.training.runs : null;
  if (st.model && runs !== S.runs) {
    S.runs = runs; S.model = st.model;
    $("predict-box").hidden = false; $("downloads").hidden = false;
    $("draw-box").hidden = !st.model.canvas;
    await loadModel(st.model);
    if (st.model.canvas) setupCanvas(st.model.prep);
    if (st.model.kind === "backbone" && st.training.runs) pollSuspects(st.training.runs).catch(() => {});
  }
}
refresh().catch((e) => { $("info").textContent = "studio unavailable: " + e.message; });
