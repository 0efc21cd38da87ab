// Node's half of the runtime: files, image decoding and encoding (sharp), ONNX Runtime for
// Node. The model glue itself is glue.mjs, shared with the web page.
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

import { InputError, decodeColourMask, greyLooksLikeColourMask, openModel, resizeLabels } from './glue.mjs';

export * from './glue.mjs';

// The model shipped with dpst: serve/bundled/, beside this package in the repository.
export const BUNDLED_MODEL = fileURLToPath(new URL('../bundled/model.onnx', import.meta.url));

async function readIfFile(name) {
  try {
    return new Uint8Array(await readFile(name));
  } catch (error) {
    if (error.code === 'ENOENT') return null;
    if (error.code === 'EISDIR') throw new InputError(`${name}: is a directory, not a model file`);
    throw new InputError(`${name}: ${error.message}`);
  }
}

/** The Stylizer for a stylizer .onnx (its two companions beside it), ONNX Runtime on the CPU.
 * threads: ONNX Runtime's intra-op threads for the stylizer and encoder, and renderer runs in
 * flight at once (default: the cores). */
export async function openNodeModel(modelPath = BUNDLED_MODEL, { threads, warn, protectHighlights } = {}) {
  const cores = threads ?? availableParallelism();
  return openModel(ort, readIfFile, path.resolve(modelPath), {
    threads: cores,
    // onnxruntime-node runs a session on the JavaScript thread (run() is synchronous inside its
    // promise), so bands cannot go side by side as in Python: ONNX Runtime's own threads work
    // inside each band instead.
    rendererThreads: cores,
    renderWorkers: 1,
    warn,
    protectHighlights,
    sessionOptions: { executionProviders: ['cpu'] },
  });
}

async function decode(file) {
  try {
    const info = await stat(file);
    if (info.isDirectory()) throw new InputError(`${file}: is a directory, not an image`);
    if (info.size === 0) throw new InputError(`${file}: file is empty`);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`${file}: no such file`);
  }
  try {
    // rotate(): EXIF orientation applied, as Python's reader does.
    const { data, info } = await sharp(file, { failOn: 'error' }).rotate().raw().toBuffer({ resolveWithObject: true });
    if (info.depth !== 'uchar') throw new InputError(`${file}: ${info.depth} samples; this runtime reads 8-bit images`);
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`${file}: not a readable image (${String(error.message).split('\n')[0]})`);
  }
}

/** An image file as {data: interleaved RGB uint8, width, height}: grey repeated, transparency
 * flattened onto white (with a warning), as dpst's read_photo. */
export async function readImage(file, warn = (m) => console.warn(m)) {
  const { data, width, height, channels } = await decode(file);
  const pixels = width * height;
  const rgb = new Uint8Array(pixels * 3);
  const colour = channels >= 3;
  const hasAlpha = channels === 2 || channels === 4;
  let translucent = 0;
  for (let p = 0; p < pixels; p++) {
    const src = p * channels;
    const alpha = hasAlpha ? data[src + channels - 1] : 255;
    for (let c = 0; c < 3; c++) {
      const v = data[src + (colour ? c : 0)];
      if (alpha === 255) rgb[3 * p + c] = v;
      else {
        // Python: rgb * a + white * (1 - a) in float32, then round(v * 255) by +0.5.
        const a = Math.fround(alpha / 255);
        const mixed = Math.fround(Math.fround(Math.fround(v / 255) * a) + Math.fround(1 - a));
        rgb[3 * p + c] = Math.floor(Math.fround(Math.fround(Math.min(Math.max(mixed, 0), 1) * 255) + 0.5));
      }
    }
    if (alpha < 255) translucent++;
  }
  if (translucent) {
    warn(`${file}: ${Math.round((100 * translucent) / pixels)}% of the pixels are transparent or translucent; read as flattened onto white (the output is opaque)`);
  }
  return { data: rgb, width, height };
}

/** A mask file as labels (Int32Array, -1 unlabelled) for an image of width x height: a colour
 * mask in the paper's palette (RGB), or an 8-bit grey label map (values are labels; a grey file
 * of the palette's black, white and grey only is read as a colour mask). Transparent pixels
 * (alpha below half) are unlabelled. Another size is resized (nearest) with a warning. */
export async function readMask(file, width, height, warn = (m) => console.warn(m)) {
  const image = await decode(file);
  const pixels = image.width * image.height;
  const { data, channels } = image;
  const hasAlpha = channels === 2 || channels === 4;
  let labels;
  let isColour = channels >= 3;
  if (!isColour) {
    const values = new Uint8Array(pixels);
    for (let p = 0; p < pixels; p++) values[p] = data[p * channels];
    isColour = greyLooksLikeColourMask(values, image.width, image.height);
    if (!isColour) labels = Int32Array.from(values);
  }
  if (isColour) {
    const rgb = new Float32Array(pixels * 3);
    for (let p = 0; p < pixels; p++) {
      const a = hasAlpha ? Math.fround(data[p * channels + channels - 1] / 255) : 1;
      for (let c = 0; c < 3; c++) {
        const v = Math.fround(data[p * channels + (channels >= 3 ? c : 0)] / 255);
        // Flattened onto white as Python reads it (only pixels of alpha >= half keep a label).
        rgb[3 * p + c] = a === 1 ? v : Math.fround(Math.fround(v * a) + Math.fround(1 - a));
      }
    }
    labels = decodeColourMask(rgb, pixels);
  }
  if (hasAlpha) {
    for (let p = 0; p < pixels; p++) if (data[p * channels + channels - 1] / 255 < 0.5) labels[p] = -1;
  }
  if (isColour) {
    const unlabelled = labels.reduce((n, l) => n + (l < 0), 0) / pixels;
    if (unlabelled === 1) {
      warn(`${file}: no pixel has one of the paper's mask colours; using one region`);
      labels.fill(0);
    } else if (unlabelled > 0.1) {
      warn(`${file}: ${Math.round(unlabelled * 100)}% of the pixels match none of the paper's mask colours; they belong to no region`);
    }
  }
  if (image.width !== width || image.height !== height) {
    warn(`${file}: mask is ${image.width}x${image.height}, image is ${width}x${height}; resized (nearest neighbour)`);
    labels = resizeLabels(labels, image.height, image.width, height, width);
  }
  return labels;
}

const FORMATS = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' };

/** Writes interleaved RGB uint8 by the file's extension (PNG, JPEG or WebP at quality 95),
 * through a temporary file renamed over it: readers never see half a file. */
export async function writeImage(file, rgb, width, height) {
  const format = FORMATS[path.extname(file).toLowerCase()];
  if (!format) throw new InputError(`${file}: write .png, .jpg or .webp`);
  const encoded = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } })
    .toFormat(format, format === 'png' ? {} : { quality: 95 })
    .toBuffer();
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(temporary, encoded);
    await rename(temporary, file);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw new InputError(`${file}: cannot write (${error.code ?? error.message})`);
  }
}
