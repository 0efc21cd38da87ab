// The web page: glue.mjs (shared with Node) on onnxruntime-web's WebAssembly backend.
// Served over http(s) from the serve/ folder (python -m http.server -d serve), it reads
// ONNX Runtime Web from ../node_modules and the model from ../../bundled/ (or ?model=URL
// naming a stylizer .onnx). crypto.subtle (the checksums) needs a secure context: https or
// localhost.
import * as ort from '../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';

import { InputError, openModel } from '../glue.mjs';

const $ = (id) => document.getElementById(id);
const status = (text, state = 'busy') => {
  $('status').textContent = text;
  $('status').dataset.state = state;
  $('status').className = state === 'error' ? 'error' : '';
};

ort.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
// Threads need a cross-origin isolated page (SharedArrayBuffer); one thread otherwise.
ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

const modelUrl = new URL(new URLSearchParams(location.search).get('model') ?? '../../bundled/model.onnx', location.href);
const fetched = new Map();
async function readFile(name) {
  // Names come back relative to the stylizer's folder; each file is downloaded once.
  if (!fetched.has(name)) {
    fetched.set(name, (async () => {
      const response = await fetch(new URL(name, modelUrl));
      return response.ok ? new Uint8Array(await response.arrayBuffer()) : null;
    })());
  }
  return fetched.get(name);
}

/** A file as {data: RGB bytes, width, height}: EXIF orientation applied, transparency
 * flattened onto white (as dpst reads photos). */
async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch {
    throw new InputError(`${file.name}: not an image this browser can read`);
  }
  const { width, height } = bitmap;
  const context = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const pixels = width * height;
  const data = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const a = Math.fround(rgba[4 * p + 3] / 255);
    for (let c = 0; c < 3; c++) {
      const v = rgba[4 * p + c];
      data[3 * p + c] = a === 1 ? v
        : Math.floor(Math.fround(Math.fround(Math.fround(Math.fround(v / 255) * a) + Math.fround(1 - a)) * 255) + 0.5);
    }
  }
  return { data, width, height };
}

const images = { content: null, style: null };
let stylizer = null;

function ready() {
  $('run').disabled = !(stylizer && images.content && images.style);
}

async function choose(which, file) {
  if (!file) return;
  try {
    status(`Reading ${file.name}…`);
    images[which] = await decode(file);
    $(`${which}-preview`).src = URL.createObjectURL(file);
    status(`${which === 'content' ? 'Photo' : 'Style'}: ${images[which].width}x${images[which].height}`, 'idle');
  } catch (error) {
    images[which] = null;
    status(error.message, 'error');
  }
  ready();
}

for (const which of ['content', 'style']) {
  $(which).addEventListener('change', (event) => choose(which, event.target.files[0]));
  const zone = $(`${which}-drop`);
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    choose(which, event.dataTransfer.files[0]);
  });
}
$('strength').addEventListener('input', () => { $('strength-value').textContent = Number($('strength').value).toFixed(2); });

$('run').addEventListener('click', async () => {
  $('run').disabled = true;
  const started = performance.now();
  try {
    const { content, style } = images;
    const rgb = await stylizer.stylize(content, style, {
      strength: Number($('strength').value),
      onBand: (done, total) => status(`Rendering ${Math.round((100 * done) / total)}%`),
    });
    const canvas = $('result');
    canvas.width = content.width;
    canvas.height = content.height;
    const context = canvas.getContext('2d');
    // Written in bands of rows: one RGBA copy of the whole photo is 48 MB at 12 MP.
    const rows = Math.max(1, Math.floor((1 << 20) / content.width));
    for (let y = 0; y < content.height; y += rows) {
      const h = Math.min(rows, content.height - y);
      const band = context.createImageData(content.width, h);
      for (let p = 0, q = y * content.width * 3; p < content.width * h; p++, q += 3) {
        band.data[4 * p] = rgb[q];
        band.data[4 * p + 1] = rgb[q + 1];
        band.data[4 * p + 2] = rgb[q + 2];
        band.data[4 * p + 3] = 255;
      }
      context.putImageData(band, 0, y);
    }
    canvas.style.display = 'block';
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    const link = $('download');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.hidden = false;
    status(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s`, 'done');
  } catch (error) {
    status(error instanceof InputError ? error.message : `Failed: ${error.message ?? error}`, 'error');
  }
  ready();
});

try {
  stylizer = await openModel(ort, readFile, modelUrl.pathname.split('/').pop(), {
    warn: (message) => console.warn(message),
    sessionOptions: { executionProviders: ['wasm'] },
  });
  status('Model ready: choose two photos', 'idle');
} catch (error) {
  status(`The model could not be loaded: ${error.message ?? error}`, 'error');
}
ready();
