"use strict";
/* The model's input in the browser, bit-identical to sortnet.data.preprocess.image_to_array:
   RGBA pixels -> L (Pillow's integer formula) or RGB -> shorter side to img_size / crop with Pillow's
   bilinear resample (its fixed-point arithmetic, 22 precision bits, horizontal pass then vertical, uint8
   in between) -> centre crop -> uint8 [C, S, S]; then --invert auto's border test.
   Usage: const x = modelInput(imageData, prep);   // {data: Uint8Array C*S*S, inverted} */
const PRECISION_BITS = 22;

function pyRound(v) {  // Python's round(): halves go to the even neighbour
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function resampleCoeffs(inSize, outSize) {  // Pillow's precompute_coeffs + normalize_coeffs_8bpc, bilinear
  const scale = inSize / outSize, filterscale = Math.max(scale, 1.0), support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1, kk = new Float64Array(outSize * ksize), bounds = new Int32Array(outSize * 2);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale, ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5); if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5); if (xmax > inSize) xmax = inSize; xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss), w = t < 1.0 ? 1.0 - t : 0.0;
      kk[xx * ksize + x] = w; ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin; bounds[xx * 2 + 1] = xmax;
  }
  const ik = new Float64Array(kk.length);
  for (let i = 0; i < kk.length; i++) {
    const v = kk[i] * (1 << PRECISION_BITS);
    ik[i] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { ksize, k: ik, bounds };
}

function clip8(ss) { const v = Math.floor(ss / (1 << PRECISION_BITS)); return v < 0 ? 0 : v > 255 ? 255 : v; }

/* planes: Uint8Array per channel, w x h -> planes of nw x nh (Pillow ImagingResampleInner) */
function resizePlanes(planes, w, h, nw, nh) {
  if (nw === w && nh === h) return planes;
  const horiz = resampleCoeffs(w, nw), vert = resampleCoeffs(h, nh);
  const yFirst = vert.bounds[0], yLast = vert.bounds[nh * 2 - 2] + vert.bounds[nh * 2 - 1];
  const half = 1 << (PRECISION_BITS - 1);
  return planes.map((src) => {
    let cur = src, cw = w, rowOffset = 0;
    if (nw !== w) {
      const rows = yLast - yFirst, tmp = new Uint8Array(nw * rows);
      for (let y = 0; y < rows; y++) {
        const base = (y + yFirst) * w;
        for (let xx = 0; xx < nw; xx++) {
          const xmin = horiz.bounds[xx * 2], xmax = horiz.bounds[xx * 2 + 1], off = xx * horiz.ksize;
          let ss = half;
          for (let x = 0; x < xmax; x++) ss += src[base + x + xmin] * horiz.k[off + x];
          tmp[y * nw + xx] = clip8(ss);
        }
      }
      cur = tmp; cw = nw; rowOffset = yFirst;
    }
    if (nh === h) return cur;
    const out = new Uint8Array(nw * nh);
    for (let yy = 0; yy < nh; yy++) {
      const ymin = vert.bounds[yy * 2] - rowOffset, ymax = vert.bounds[yy * 2 + 1], off = yy * vert.ksize;
      for (let xx = 0; xx < nw; xx++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) ss += cur[(y + ymin) * cw + xx] * vert.k[off + y];
        out[yy * nw + xx] = clip8(ss);
      }
    }
    return out;
  });
}

function channelPlanes(rgba, n, channels) {  // alpha composited on white like sortnet's decoder, then L or RGB
  const r = new Uint8Array(n), g = new Uint8Array(n), b = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3];
    if (a === 255) { r[i] = rgba[4 * i]; g[i] = rgba[4 * i + 1]; b[i] = rgba[4 * i + 2]; continue; }
    const blend = (c) => Math.round((c * a + 255 * (255 - a)) / 255);
    r[i] = blend(rgba[4 * i]); g[i] = blend(rgba[4 * i + 1]); b[i] = blend(rgba[4 * i + 2]);
  }
  if (channels === 3) return [r, g, b];
  const l = new Uint8Array(n);
  for (let i = 0; i < n; i++) l[i] = (r[i] * 19595 + g[i] * 38470 + b[i] * 7471 + 0x8000) >> 16;
  return [l];
}

function borderIsLight(planes, s) {  // median of the 1-px ring, channels averaged (predictor.border_is_light)
  const ring = [], c = planes.length, at = (y, x) => planes.reduce((t, p) => t + p[y * s + x], 0) / c;
  for (let x = 0; x < s; x++) ring.push(at(0, x));
  for (let x = 0; x < s; x++) ring.push(at(s - 1, x));
  for (let y = 1; y < s - 1; y++) ring.push(at(y, 0));
  for (let y = 1; y < s - 1; y++) ring.push(at(y, s - 1));
  ring.sort((a, b) => a - b);
  const m = ring.length >> 1, median = ring.length % 2 ? ring[m] : (ring[m - 1] + ring[m]) / 2;
  return median >= 128;
}

function modelInput(imageData, prep) {
  const w = imageData.width, h = imageData.height, size = prep.img_size, crop = prep.crop || 1.0;
  let planes = channelPlanes(imageData.data, w * h, prep.channels), cw = w, ch = h;
  if (!(w === size && h === size && crop === 1.0)) {
    if (prep.resize === "stretch") { planes = resizePlanes(planes, w, h, size, size); cw = ch = size; }
    else {
      const scale = size / crop / Math.min(w, h);
      cw = Math.max(size, pyRound(w * scale)); ch = Math.max(size, pyRound(h * scale));
      planes = resizePlanes(planes, w, h, cw, ch);
    }
  }
  const left = (cw - size) >> 1, top = (ch - size) >> 1, data = new Uint8Array(planes.length * size * size);
  planes.forEach((p, c) => {
    for (let y = 0; y < size; y++) data.set(p.subarray((y + top) * cw + left, (y + top) * cw + left + size), (c * size + y) * size);
  });
  let inverted = false;
  if (prep.background && borderIsLight(planes.map((_, c) => data.subarray(c * size * size, (c + 1) * size * size)), size)
      !== (prep.background === "light")) {
    for (let i = 0; i < data.length; i++) data[i] = 255 - data[i];
    inverted = true;
  }
  return { data, inverted };
}
