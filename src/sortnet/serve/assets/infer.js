"use strict";
/* The model in the page (onnxruntime-web, vendored under assets/vendor/, WebAssembly; no network).
   Two kinds, the same maths as `sortnet predict`:
   - "graph":    a whole exported model (sortnet export): uint8 images -> probabilities (TTA inside);
   - "backbone": the studio's frozen backbone (float pixels -> features) run on the image and its mirror,
     features averaged, then the linear head (logits = W f + b) and a softmax here: a linear head's
     logits averaged over the two views equal the head applied to the averaged features (the flip TTA).
   "None of these" (sortnet/unknown/), as `sortnet predict` on the same model file: the graph's unknown_score output,
   or for the backbone kind the knn score 1 - cosine similarity of the averaged features to the k-th nearest row
   of the bank (L2-normalized training features, float32 [bank, dim]: the studio's /api/unknown-bank.bin);
   unknown when the score is above spec.unknown.threshold.
   Usage: const m = await loadInBrowser({kind, url | session, prep, head, unknown, bank});
          const { probs, score } = await m.run(uint8CHW); m.isUnknown(score); */
const InBrowser = {
  available() { return typeof WebAssembly === "object" && typeof ort === "object"; },

  async session(url) {
    ort.env.wasm.wasmPaths = new URL("assets/vendor/", document.baseURI).href;
    ort.env.wasm.numThreads = 1;  // threads need the page cross-origin isolated and hung session creation here
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  },

  knnScore(f, bank, dim, k) {  // sortnet/unknown/scorer.py "knn" on one feature vector f [dim]
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += f[j] * f[j];
    norm = Math.max(Math.sqrt(norm), 1e-12);
    const n = bank.length / dim, sims = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let j = 0, o = i * dim; j < dim; j++) d += f[j] * bank[o + j];
      sims[i] = d / norm;
    }
    sims.sort();  // ascending: the k-th nearest is the k-th from the end
    return 1 - sims[n - Math.min(k, n)];
  },

  softmax(logits) {
    const m = Math.max(...logits), e = logits.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  },
};

async function loadInBrowser(spec) {
  const session = spec.session || await InBrowser.session(spec.url), s = spec.prep.img_size, c = spec.prep.channels;
  const isUnknown = (score) => score !== null && spec.unknown != null && score > spec.unknown.threshold;
  if (spec.kind === "graph") {
    return { spec, isUnknown, async run(x) {
      const out = await session.run({ images: new ort.Tensor("uint8", x, [1, c, s, s]) });
      return { probs: Array.from(out.probabilities.data), score: out.unknown_score ? out.unknown_score.data[0] : null };
    } };
  }
  return { spec, isUnknown, async run(x) {  // backbone + head: batch of 2 = the image and its mirror
    const both = new Float32Array(2 * c * s * s), plane = s * s;
    for (let i = 0; i < x.length; i++) both[i] = x[i];
    for (let ch = 0; ch < c; ch++) for (let y = 0; y < s; y++) for (let xx = 0; xx < s; xx++)
      both[c * plane + ch * plane + y * s + xx] = x[ch * plane + y * s + (s - 1 - xx)];
    const out = await session.run({ x: new ort.Tensor("float32", both, [2, c, s, s]) });
    const f = out.features.data, dim = f.length / 2, head = spec.head, avg = new Float32Array(dim);
    for (let j = 0; j < dim; j++) avg[j] = 0.5 * (f[j] + f[dim + j]);
    const logits = head.weight.map((row, k) => {
      let z = head.bias[k];
      for (let j = 0; j < dim; j++) z += row[j] * avg[j];
      return z;
    });
    const u = spec.unknown, score = u && spec.bank ? InBrowser.knnScore(avg, spec.bank, dim, u.k) : null;
    return { probs: InBrowser.softmax(logits), score };
  } };
}

function topK(probs, classes, k) {
  return probs.map((p, i) => ({ class: classes[i], probability: p }))
    .sort((a, b) => b.probability - a.probability).slice(0, k);
}
