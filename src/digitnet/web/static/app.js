// The drawing page: pointer strokes on a canvas, sent as PNG to /api/predict (debounced).
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen");
const seenCtx = seen.getContext("2d");
const predictionEl = document.getElementById("prediction");
const confidenceEl = document.getElementById("confidence");
const barsEl = document.getElementById("bars");
const modelEl = document.getElementById("model");
const numberModeEl = document.getElementById("number-mode");
const numberEl = document.getElementById("number");
const numberTextEl = document.getElementById("number-text");
const digitsEl = document.getElementById("digits");
const collectEl = document.getElementById("collect");
const collectStatusEl = document.getElementById("collect-status");
let collecting = false;   // the server was started with --collect

// MNIST strokes are about 2-3 px wide in a 20 px digit; a digit drawn across most of the
// canvas is scaled down by ~12x, so a line of 1/10 of the canvas ends up MNIST-like.
const STROKE = pad.height / 10;     // the same in number mode, where the canvas is 3x as wide
const DEBOUNCE_MS = 120;
// The digit ends up 20 px large, so the page sends only the inked part of the canvas, with a
// margin, scaled down to 64 px (web/inputs.py, PAGE_DIGIT_SIDE): strokes a tenth of the canvas
// wide stay 6 px or more, it reads as a larger crop does, and the server reads it in less time.
// A number is cut into digits at up to 1024 px (segment.LINE_WORK_SIZE), more than the wide
// canvas has: number mode sends the crop unscaled.
const DIGIT_SIDE = 64;

let drawing = false;
let dirty = false;        // something drawn since the last prediction was requested
let inFlight = false;
let timer = null;
let last = null;
let generation = 0;       // bumped by clear(): answers for an older drawing are ignored

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  generation += 1;
  dirty = false;
  showEmpty();
  markBusy();
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}

function strokeTo(p) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
  dirty = true;
  schedule();
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  drawing = true;
  last = point(e);
  strokeTo(last);       // a dot for a tap
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  // coalesced events give smooth lines on fast pens and touch screens
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) strokeTo(point(ev));
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    clearTimeout(timer);
    timer = null;
    predict();
  });
}

document.getElementById("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (e) => {
  if (e.target === modelEl || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "Escape" || e.key === "Delete" || e.key === "Backspace" || e.key === "c" || e.key === "C") {
    e.preventDefault();
    clearPad();
  }
});
modelEl.addEventListener("change", () => { dirty = true; predict(); });

// Number mode: a canvas three times as wide, read as a row of digits (split=true)
numberModeEl.addEventListener("change", () => {
  const wide = numberModeEl.checked;
  document.body.classList.toggle("wide", wide);
  pad.width = wide ? 3 * pad.height : pad.height;      // resizing also clears the canvas
  pad.setAttribute("aria-label", wide ? "drawing area: write a number" : "drawing area: draw one digit");
  numberEl.hidden = !wide;
  collectEl.hidden = wide || !collecting;
  clearPad();
});

function schedule() {
  if (timer === null) timer = setTimeout(() => { timer = null; predict(); }, DEBOUNCE_MS);
  markBusy();
}

// body[data-busy] is "true" while a prediction is pending or in flight (tests wait on it)
function markBusy() {
  document.body.dataset.busy = String(inFlight || dirty || timer !== null);
}

// The canvas cropped to its ink (plus a stroke's width of margin) and scaled to at most `side`
// px; the whole canvas when it is blank, so that the server says so.
function inkedPart(side) {
  const { data, width, height } = ctx.getImageData(0, 0, pad.width, pad.height);
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width * 4;
    for (let x = 0; x < width; x++) {
      if (data[row + 4 * x] < 250) {          // ink: darker than the white paper
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  if (x1 < 0) return pad;
  const margin = Math.ceil(STROKE);
  x0 = Math.max(0, x0 - margin); y0 = Math.max(0, y0 - margin);
  x1 = Math.min(width - 1, x1 + margin); y1 = Math.min(height - 1, y1 + margin);
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const scale = Math.min(1, side / Math.max(w, h));
  const out = document.createElement("canvas");
  out.width = Math.max(1, Math.round(w * scale));
  out.height = Math.max(1, Math.round(h * scale));
  const octx = out.getContext("2d");
  octx.fillStyle = "#fff";
  octx.fillRect(0, 0, out.width, out.height);
  octx.imageSmoothingQuality = "high";
  octx.drawImage(pad, x0, y0, w, h, 0, 0, out.width, out.height);
  return out;
}

function predict() {
  if (!dirty) return;
  if (inFlight) { schedule(); return; }   // one request at a time; the latest drawing follows
  dirty = false;
  inFlight = true;
  const asked = generation;   // clear() bumps it: an answer for an older drawing is then ignored
  const part = inkedPart(numberModeEl.checked ? Infinity : DIGIT_SIDE);
  greyPNG(part).then(
    (png) => send(png, asked),
    () => part.toBlob((png) => send(png, asked), "image/png"),   // no CompressionStream: the canvas's own PNG
  );
}

// A canvas as an 8-bit greyscale PNG of its red channel: each row unfiltered, deflated by the browser.
// The drawing is black on white (red = green = blue, opaque), so one channel loses nothing: the PNG
// is smaller than the RGBA one a canvas exports, and the server decodes it in less than half the time.
async function greyPNG(canvas) {
  const { data, width, height } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const rows = new Uint8Array((width + 1) * height);      // each row: filter type 0 (none), then its pixels
  for (let y = 0, i = 0, j = 0; y < height; y++) {
    rows[j++] = 0;
    for (let x = 0; x < width; x++, i += 4) rows[j++] = data[i];
  }
  const zlib = new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"));
  const idat = new Uint8Array(await new Response(zlib).arrayBuffer());
  const ihdr = new Uint8Array(13);                        // width, height, depth 8, colour type 0 (grey)
  const header = new DataView(ihdr.buffer);
  header.setUint32(0, width);
  header.setUint32(4, height);
  ihdr[8] = 8;
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  return new Blob([signature, pngChunk("IHDR", ihdr), pngChunk("IDAT", idat), pngChunk("IEND", new Uint8Array(0))],
    { type: "image/png" });
}

// A PNG chunk: length, type, data, and the CRC-32 of type and data.
function pngChunk(type, bytes) {
  const out = new Uint8Array(12 + bytes.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, bytes.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(bytes, 8);
  view.setUint32(8 + bytes.length, crc32(out.subarray(4, 8 + bytes.length)));
  return out;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function send(png, asked) {
  const form = new FormData();
  form.append("file", png, "digit.png");
  if (modelEl.value) form.append("model", modelEl.value);
  if (numberModeEl.checked) form.append("split", "true");
  form.append("top_k", "3");
  try {
    const res = await fetch("/api/predict", { method: "POST", body: form });
    const data = await res.json();
    if (asked !== generation) return;
    if (res.ok) show(data);
    else if (/blank/.test(data.detail)) showEmpty();
    else showError(data.detail || res.statusText);
  } catch (err) {
    if (asked === generation) showError("server unreachable");
  } finally {
    inFlight = false;
    if (dirty) schedule();
    markBusy();
  }
}

// One bar per class of the answering model (the digits until a model says otherwise).
function buildBars(classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]) {
  barsEl.replaceChildren();
  barsEl.dataset.classes = JSON.stringify(classes);
  for (const name of classes) {
    const li = document.createElement("li");
    li.innerHTML = `<span></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    li.firstChild.textContent = name;          // a name from a model file: text, never markup
    barsEl.appendChild(li);
  }
}

function show(data) {
  if (data.classes && JSON.stringify(data.classes) !== barsEl.dataset.classes) buildBars(data.classes);
  const refused = data.label === null;        // the model reads the drawing as not a digit
  predictionEl.textContent = refused ? "?" : (data.class ?? String(data.label));
  predictionEl.dataset.label = refused ? "none" : String(data.label);
  predictionEl.classList.remove("empty");
  if (refused) {
    confidenceEl.textContent = `not a digit (${data.model})`;
    confidenceEl.title = data.reason || "";
  } else {
    const p = data.probabilities[data.label];
    confidenceEl.textContent = `${(p * 100).toFixed(1)} % sure (${data.model})`;
    confidenceEl.title = "";
  }
  confidenceEl.classList.remove("error");
  data.probabilities.forEach((q, d) => {
    const li = barsEl.children[d];
    li.classList.toggle("top", d === data.label);
    li.querySelector(".fill").style.width = `${(q * 100).toFixed(1)}%`;
    li.querySelector(".pct").textContent = `${(q * 100).toFixed(1)}%`;
  });
  const img = seenCtx.createImageData(28, 28);
  data.image.forEach((row, y) => row.forEach((v, x) => {
    const i = 4 * (y * 28 + x);
    img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
    img.data[i + 3] = 255;
  }));
  seenCtx.putImageData(img, 0, 0);
  showNumber(data);
}

function paint28(canvas, rows) {
  const c = canvas.getContext("2d");
  const img = c.createImageData(28, 28);
  rows.forEach((row, y) => row.forEach((v, x) => {
    const i = 4 * (y * 28 + x);
    img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
    img.data[i + 3] = 255;
  }));
  c.putImageData(img, 0, 0);
}

// The number and, for each digit found, what the network saw and its reading
function showNumber(data) {
  // a piece read as not a digit has a null label, and the number is then null too
  const text = data.number ?? data.digits.map((d) => (d.label === null ? "?" : String(d.label))).join("");
  numberTextEl.textContent = text;
  numberTextEl.dataset.number = data.number ?? "";
  numberTextEl.classList.remove("empty");
  digitsEl.replaceChildren();
  for (const d of data.digits) {
    const li = document.createElement("li");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    paint28(canvas, d.image);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = d.label === null ? "?" : String(d.label);
    if (d.label === null) label.title = d.reason || "not a digit";
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${(d.top_k[0].probability * 100).toFixed(0)} %`;
    li.append(canvas, label, pct);
    digitsEl.appendChild(li);
  }
}

function showEmpty() {
  predictionEl.textContent = "?";
  predictionEl.dataset.label = "";
  predictionEl.classList.add("empty");
  confidenceEl.textContent = "draw a digit";
  confidenceEl.classList.remove("error");
  for (const li of barsEl.children) {
    li.classList.remove("top");
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".pct").textContent = "";
  }
  seenCtx.fillStyle = "#000";
  seenCtx.fillRect(0, 0, 28, 28);
  numberTextEl.textContent = "?";
  numberTextEl.dataset.number = "";
  numberTextEl.classList.add("empty");
  digitsEl.replaceChildren();
}

// "Wrong? tap the right digit": only when the server collects (serve --collect DIR)
async function setUpCollect() {
  try {
    const res = await fetch("/api/collect");
    if (!res.ok) return;                   // 404: not collecting
  } catch (err) {
    return;
  }
  collecting = true;
  const buttons = document.getElementById("collect-digits");
  for (let d = 0; d < 10; d++) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = String(d);
    b.dataset.digit = String(d);
    b.addEventListener("click", () => collect(d));
    buttons.appendChild(b);
  }
  collectEl.hidden = numberModeEl.checked;
}

function collect(digit) {
  if (predictionEl.dataset.label === "") {
    collectStatusEl.textContent = "draw a digit first";
    return;
  }
  pad.toBlob(async (blob) => {
    const form = new FormData();
    form.append("file", blob, "drawing.png");
    form.append("label", String(digit));
    try {
      const res = await fetch("/api/collect", { method: "POST", body: form });
      const data = await res.json();
      collectStatusEl.textContent = res.ok
        ? `saved as a ${digit} (${data.counts[String(digit)]} of ${digit} so far)`
        : (data.detail || res.statusText);
      collectStatusEl.dataset.saved = res.ok ? String(digit) : "";
    } catch (err) {
      collectStatusEl.textContent = "server unreachable";
    }
  }, "image/png");
}

function showError(message) {
  confidenceEl.textContent = message;
  confidenceEl.classList.add("error");
}

async function loadModels() {
  try {
    const res = await fetch("/api/model");
    const info = await res.json();
    for (const m of info.models) {
      const opt = document.createElement("option");
      opt.value = m.name;
      const acc = m.test_accuracy ? ` (${(m.test_accuracy * 100).toFixed(1)} %)` : "";
      opt.textContent = m.name + acc;
      opt.selected = m.name === info.default;
      modelEl.appendChild(opt);
    }
  } catch (err) {
    showError("could not list models");
  }
  await setUpCollect();
  document.body.dataset.ready = "true";
}

buildBars();
clearPad();
loadModels();
