// The glue around dpst's three ONNX graphs, in plain JavaScript: one ES module for Node
// (onnxruntime-node, stylize.mjs) and the browser (onnxruntime-web, web/). No imports: the
// caller passes the ONNX Runtime module (`ort`) and reads the files (`readFile`).
//
// Every step is docs/onnx.md's, numbered there; the Python reference is dpst.serve.runtime.
// Arithmetic follows the Python's dtypes (Math.fround where NumPy works in float32), so the
// results match it to float32 round-off, and the 8-bit output almost everywhere bit for bit.
//
// Images are {data, width, height}: data a Uint8Array (or Uint8ClampedArray) of interleaved
// RGB, 3 bytes a pixel, row-major. Label maps are Int32Array(width * height), -1 unlabelled.

export const MODEL_FORMAT = 'dpst-onnx';
// The newest format this glue reads (docs/onnx.md, "Format versions"); 3 and 4 run.
export const MODEL_FORMAT_VERSION = 4;
export const STYLE_CODE = ['style_mean', 'style_std', 'style_colour_mean', 'style_colour_cov'];
const STYLIZER_INPUTS = ['content', 'content_masks', ...STYLE_CODE];
const IO = {
  stylizer: {
    4: [STYLIZER_INPUTS, ['output', 'grid', 'label_maps']],
    3: [STYLIZER_INPUTS, ['output', 'grid']],
  },
  style_encoder: { any: [['style', 'style_masks'], STYLE_CODE] },
  renderer: {
    4: [['content', 'grid', 'rows', 'cols', 'label_weights', 'label_maps', 'label_rows', 'label_cols'], ['output']],
    3: [['content', 'grid', 'rows', 'cols'], ['output']],
  },
};
export const LABEL_LONG_SIDE = 512;
export const STRENGTH_MIN = 0;
export const STRENGTH_MAX = 2;
// Pixels per band of rows rendered at once (Python's tiled_render.BAND_PIXELS): bounded memory.
export const BAND_PIXELS = 1 << 15;
// The label policy decides on copies of at most this many pixels a side (labels/one_pass.py).
export const LABEL_WORK_SIDE = 512;
// Paper palette then the extended colours: label i is colour i (labels/palette.py).
export const MASK_PALETTE = [
  [0, 0, 255], [0, 255, 0], [0, 0, 0], [255, 255, 255], [255, 0, 0], [255, 255, 0],
  [128, 128, 128], [0, 255, 255], [255, 0, 255],
  [128, 192, 0], [0, 192, 128], [192, 128, 0], [255, 192, 128], [128, 0, 192], [255, 128, 192],
  [0, 128, 192], [192, 0, 128], [128, 192, 255], [192, 255, 128], [192, 128, 255], [128, 255, 192],
];
const COLOUR_TOLERANCE = 0.1;

const f32 = Math.fround;

/** A user-facing error: the CLI prints its message as one line and exits 2. */
export class InputError extends Error {
  constructor(message) {
    super(message);
    this.name = 'InputError';
  }
}

// ---- model files: metadata, checksums, sessions -------------------------------------------

function readVarint(bytes, pos) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= bytes.length) throw new InputError('truncated ONNX file');
    const byte = bytes[pos++];
    value += (byte & 0x7f) * scale; // multiplication, not shifts: lengths may pass 2^31
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
}

/** The ONNX file's metadata_props (ModelProto field 14) as {key: string}. ONNX Runtime's
 * JavaScript API does not expose them, so the protobuf is walked here: top-level fields only,
 * the graph skipped by its length. */
export function onnxMetadataProps(bytes) {
  const props = {};
  const text = new TextDecoder();
  let pos = 0;
  while (pos < bytes.length) {
    let key;
    [key, pos] = readVarint(bytes, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) [, pos] = readVarint(bytes, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let length;
      [length, pos] = readVarint(bytes, pos);
      if (field === 14) {
        const entry = bytes.subarray(pos, pos + length);
        const kv = ['', ''];
        let p = 0;
        while (p < entry.length) {
          let k, n;
          [k, p] = readVarint(entry, p);
          [n, p] = readVarint(entry, p);
          if ((k & 7) === 2 && (k >> 3) <= 2) kv[(k >> 3) - 1] = text.decode(entry.subarray(p, p + n));
          p += n;
        }
        props[kv[0]] = kv[1];
      }
      pos += length;
    } else throw new InputError('not an ONNX file (bad protobuf wire type)');
  }
  return props;
}

/** dpst's metadata: keys "dpst_*" without the prefix, JSON values parsed, others as strings. */
export function decodeMetadata(props) {
  const meta = {};
  for (const [key, text] of Object.entries(props)) {
    if (!key.startsWith('dpst_')) continue;
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    meta[key.slice(5)] = value;
  }
  return meta;
}

export async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    // Browsers give crypto.subtle to secure contexts only.
    throw new InputError('checking the model needs crypto.subtle: open the page over https or from localhost');
  }
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Refuses a graph that does not match the checksum written beside it (`name.sha256`, in
 * sha256sum format). Returns false when there is no checksum file (the caller warns). */
export async function checkDigest(name, bytes, sidecar) {
  if (sidecar == null) return false;
  const expected = new TextDecoder().decode(sidecar).trim().split(/\s+/)[0]?.toLowerCase();
  if (!expected) throw new InputError(`${name}.sha256: unreadable checksum file`);
  if ((await sha256Hex(bytes)) !== expected) {
    throw new InputError(
      `${name} does not match its checksum (${name}.sha256): the file is damaged or was changed; ` +
        'restore it or export the model again');
  }
  return true;
}

function checkMetadata(meta, name, role) {
  if (meta.format !== MODEL_FORMAT) throw new InputError(`${name} is not a dpst ONNX model (no dpst metadata)`);
  const version = meta.format_version;
  if (!Number.isInteger(version) || version > MODEL_FORMAT_VERSION) {
    throw new InputError(
      `${name} has dpst ONNX format ${version} (written by dpst ${meta.version ?? '?'}); ` +
        `this runtime reads up to ${MODEL_FORMAT_VERSION}: upgrade it or export the model again`);
  }
  if (version < 3) {
    throw new InputError(`${name} has dpst ONNX format ${version} (no renderer): export it again with dpst export`);
  }
  if (meta.role !== role) throw new InputError(`${name} is the '${meta.role}' model, expected the '${role}' one`);
  const missing = ['max_labels', 'model_id', 'config'].filter((k) => meta[k] == null);
  if (role === 'stylizer' && typeof meta.style_encoder_file !== 'string') missing.push('style_encoder_file');
  if (missing.length) throw new InputError(`${name}: corrupt dpst metadata (missing ${missing.join(', ')})`);
}

function namedAfter(stylizer, part) {
  const dot = stylizer.lastIndexOf('.');
  const [stem, suffix] = dot > 0 ? [stylizer.slice(0, dot), stylizer.slice(dot)] : [stylizer, '.onnx'];
  return `${stem}.${part}${suffix}`;
}

/**
 * Opens the three graphs: checksums checked, metadata and inputs/outputs checked, model ids
 * compared. `readFile(name)` returns a Uint8Array, or null when there is no such file (names
 * are relative to the stylizer's folder). Returns a Stylizer.
 * options: {threads, rendererThreads, renderWorkers, warn(message), sessionOptions,
 * protectHighlights}.
 */
export async function openModel(ort, readFile, stylizerName = 'model.onnx', options = {}) {
  const warn = options.warn ?? ((m) => console.warn(m));
  const unchecked = [];
  const open = async (name, role, threads) => {
    const bytes = await readFile(name);
    if (bytes == null) throw new InputError(`ONNX model not found: ${name} (write one with dpst export)`);
    if (!(await checkDigest(name, bytes, await readFile(`${name}.sha256`)))) unchecked.push(name);
    let props;
    try {
      props = onnxMetadataProps(bytes);
    } catch {
      props = {}; // not a protobuf at all: said below as "not a dpst ONNX model"
    }
    const meta = decodeMetadata(props);
    checkMetadata(meta, name, role);
    let session;
    try {
      session = await ort.InferenceSession.create(bytes, {
        ...(options.sessionOptions ?? {}),
        ...(threads ? { intraOpNumThreads: threads } : {}),
        // Memory patterns are planned per input shape, and every photo has its own
        // (Python: turning them off halved the peak memory at 4K at the same speed).
        enableMemPattern: false,
      });
    } catch (error) {
      throw new InputError(`${name}: not a loadable ONNX model (${String(error.message ?? error).split('\n')[0]})`);
    }
    const io = IO[role][meta.format_version] ?? IO[role].any;
    const same = (got, want) => got.length === want.length && want.every((n) => got.includes(n));
    if (!same(session.inputNames, io[0]) || !same(session.outputNames, io[1])) {
      throw new InputError(
        `${name} has inputs ${session.inputNames} and outputs ${session.outputNames}; expected ${io[0]} -> ${io[1]}`);
    }
    return { session, meta, name };
  };
  const stylizer = await open(stylizerName, 'stylizer', options.threads);
  const beside = async (recorded, part) => {
    // The name the metadata records, else the one named after the stylizer (renamed files).
    const folder = stylizerName.slice(0, Math.max(stylizerName.lastIndexOf('/'), stylizerName.lastIndexOf('\\')) + 1);
    if (typeof recorded === 'string' && (await readFile(folder + recorded)) != null) return folder + recorded;
    return namedAfter(stylizerName, part);
  };
  const encoder = await open(await beside(stylizer.meta.style_encoder_file, 'style'), 'style_encoder', options.threads);
  // rendererThreads: ONNX Runtime's threads inside each band's run (default 1: with
  // renderWorkers > 1 several runs go at once instead, where the runtime runs them in parallel).
  const renderer = await open(await beside(stylizer.meta.renderer_file, 'render'), 'renderer', options.rendererThreads ?? 1);
  for (const other of [encoder, renderer]) {
    if (other.meta.model_id !== stylizer.meta.model_id) {
      throw new InputError(`${other.name} was not exported with ${stylizerName} (model ids differ): export both again`);
    }
  }
  if (unchecked.length) {
    warn(`no .sha256 beside ${unchecked.join(', ')}, so the model could not be checked for damage (dpst export writes them)`);
  }
  return new Stylizer(ort, stylizer, encoder, renderer, options);
}

// ---- resizing (step 3) ----------------------------------------------------------------------

/** Antialiased bilinear weights along one axis, `size` pixels -> `outSize` (PyTorch's
 * interpolate(antialias=True), Pillow's triangle filter): for each output pixel its first
 * tap and its normalised float64 weights. Python: tiled_render.resize_matrix. */
export function resizeWeights(size, outSize) {
  const scale = size / outSize;
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const taps = [];
  for (let i = 0; i < outSize; i++) {
    const centre = scale * (i + 0.5);
    const low = Math.max(Math.trunc(centre - support + 0.5), 0);
    const high = Math.min(Math.trunc(centre + support + 0.5), size);
    const weights = new Float64Array(Math.max(0, high - low));
    let total = 0;
    for (let t = low; t < high; t++) {
      const w = Math.max(1 - Math.abs((t - centre + 0.5) * invScale), 0);
      weights[t - low] = w;
      total += w;
    }
    if (total > 0) for (let k = 0; k < weights.length; k++) weights[k] /= total;
    taps.push({ low, weights });
  }
  return taps;
}

/** An interleaved RGB image (uint8 or float32 in [0, 1]) resized to planar float32
 * (3, outH, outW): along x then along y, float64 sums, one float32 rounding at the end. */
export function resizePlanar(data, height, width, outH, outW) {
  const alongX = resizeWeights(width, outW);
  const alongY = resizeWeights(height, outH);
  const isByte = !(data instanceof Float32Array);
  const narrow = new Float64Array(height * outW * 3);
  const row = new Float32Array(width * 3);
  for (let r = 0; r < height; r++) {
    const base = r * width * 3;
    for (let k = 0; k < width * 3; k++) row[k] = isByte ? f32(data[base + k] / 255) : data[base + k];
    for (let j = 0; j < outW; j++) {
      const { low, weights } = alongX[j];
      let s0 = 0, s1 = 0, s2 = 0;
      for (let t = 0; t < weights.length; t++) {
        const w = weights[t];
        const p = (low + t) * 3;
        s0 += w * row[p];
        s1 += w * row[p + 1];
        s2 += w * row[p + 2];
      }
      const o = (r * outW + j) * 3;
      narrow[o] = s0;
      narrow[o + 1] = s1;
      narrow[o + 2] = s2;
    }
  }
  const out = new Float32Array(3 * outH * outW);
  const plane = outH * outW;
  for (let i = 0; i < outH; i++) {
    const { low, weights } = alongY[i];
    for (let j = 0; j < outW; j++) {
      let s0 = 0, s1 = 0, s2 = 0;
      for (let t = 0; t < weights.length; t++) {
        const w = weights[t];
        const p = ((low + t) * outW + j) * 3;
        s0 += w * narrow[p];
        s1 += w * narrow[p + 1];
        s2 += w * narrow[p + 2];
      }
      out[i * outW + j] = s0;
      out[plane + i * outW + j] = s1;
      out[2 * plane + i * outW + j] = s2;
    }
  }
  return out;
}

/** Rows [start, stop) of an interleaved uint8 RGB image as planar float32 v / 255. */
function planarBand(data, width, start, stop) {
  const rows = stop - start;
  const plane = rows * width;
  const out = new Float32Array(3 * plane);
  let src = start * width * 3;
  for (let p = 0; p < plane; p++, src += 3) {
    out[p] = f32(data[src] / 255);
    out[plane + p] = f32(data[src + 1] / 255);
    out[2 * plane + p] = f32(data[src + 2] / 255);
  }
  return out;
}

// ---- label maps -> soft one-hot masks (step 4) ----------------------------------------------

/** [h, w] with the image's aspect ratio and at most `longSide` on the long side. */
export function maskSize(height, width, longSide) {
  const scale = Math.min(1, longSide / Math.max(height, width));
  return [Math.max(1, pyRound(height * scale)), Math.max(1, pyRound(width * scale))];
}

function pyRound(x) {
  // Python's round(): half to even.
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Cell i of an axis of n pixels pooled to m cells covers [floor(i n / m), ceil((i+1) n / m)). */
function cellRanges(n, m) {
  const starts = new Int32Array(m);
  const ends = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    starts[i] = Math.floor((i * n) / m);
    ends[i] = Math.ceil(((i + 1) * n) / m);
  }
  return [starts, ends];
}

/** Soft one-hot masks (K, h, w) float32: channel k the fraction of each cell's pixels whose
 * label is k (area pooling; -1 counts in no channel). Python: labels/pooled_masks.py. */
export function labelsToMasks(labels, height, width, numLabels, outH, outW) {
  const [rowStart, rowEnd] = cellRanges(height, outH);
  const [colStart, colEnd] = cellRanges(width, outW);
  // Cells are runs of pixels, so each column belongs to a contiguous run of cells.
  const colFirst = new Int32Array(width).fill(outW);
  const colLast = new Int32Array(width).fill(-1);
  for (let j = 0; j < outW; j++) {
    for (let c = colStart[j]; c < colEnd[j]; c++) {
      colFirst[c] = Math.min(colFirst[c], j);
      colLast[c] = Math.max(colLast[c], j);
    }
  }
  const plane = outH * outW;
  const masks = new Float32Array(numLabels * plane);
  const counts = new Float64Array(numLabels * outW);
  for (let i = 0; i < outH; i++) {
    counts.fill(0);
    for (let r = rowStart[i]; r < rowEnd[i]; r++) {
      const base = r * width;
      for (let c = 0; c < width; c++) {
        const label = labels[base + c];
        if (label < 0) continue;
        const offset = label * outW;
        for (let j = colFirst[c]; j <= colLast[c]; j++) counts[offset + j] += 1;
      }
    }
    const rows = rowEnd[i] - rowStart[i];
    for (let k = 0; k < numLabels; k++) {
      for (let j = 0; j < outW; j++) {
        masks[k * plane + i * outW + j] = counts[k * outW + j] / (rows * (colEnd[j] - colStart[j]));
      }
    }
  }
  return masks;
}

function checkLabels(labels, width, height, numLabels, name) {
  if (!(labels instanceof Int32Array) || labels.length !== width * height) {
    throw new InputError(`${name} must be an Int32Array of the image's ${width}x${height} pixels`);
  }
  for (let p = 0; p < labels.length; p++) {
    const v = labels[p];
    if (v < -1 || v >= numLabels) {
      throw new InputError(
        `${name}: label ${v} is outside the model's range [0, ${numLabels}) (-1 = unlabelled); merge labels`);
    }
  }
}

/** The masks input (1, K, h, w) for an image's label map (or all-zero (1, K, 1, 1) for none). */
export function masksForImage(labels, height, width, numLabels, longSide, name) {
  if (labels == null) return { data: new Float32Array(numLabels), dims: [1, numLabels, 1, 1] };
  checkLabels(labels, width, height, numLabels, name);
  const [h, w] = maskSize(height, width, longSide);
  return { data: labelsToMasks(labels, height, width, numLabels, h, w), dims: [1, numLabels, h, w] };
}

// ---- mask images -> label maps, and the label policy (step 5) -------------------------------

/** A colour mask -> labels: `rgb` interleaved float32 in [0, 1] (bytes / 255); each pixel
 * takes the palette colour every channel of which is strictly within 0.1 of its own, else -1. */
export function decodeColourMask(rgb, pixels) {
  const labels = new Int32Array(pixels).fill(-1);
  const pal = MASK_PALETTE.map((c) => c.map((v) => f32(v / 255)));
  const tol = f32(COLOUR_TOLERANCE);
  for (let p = 0; p < pixels; p++) {
    const r = rgb[3 * p], g = rgb[3 * p + 1], b = rgb[3 * p + 2];
    // Later palette entries win in Python's loop (the colours are far apart: never both).
    for (let k = pal.length - 1; k >= 0; k--) {
      const c = pal[k];
      if (Math.abs(f32(r - c[0])) < tol && Math.abs(f32(g - c[1])) < tol && Math.abs(f32(b - c[2])) < tol) {
        labels[p] = k;
        break;
      }
    }
  }
  return labels;
}

/** Whether an 8-bit grey image is a colour mask (black, white, grey of the paper's palette)
 * rather than a label map: it has a paper grey level and almost no uniform 3x3 block of any
 * other value (Python: mask_files._looks_like_colour_mask). */
export function greyLooksLikeColourMask(values, width, height) {
  const paper = (v) => v === 0 || v === 128 || v === 255;
  let anyPaper = false;
  for (let p = 0; p < values.length && !anyPaper; p++) anyPaper = paper(values[p]);
  if (!anyPaper) return false;
  let interior = 0;
  const at = (y, x) => values[Math.min(height - 1, Math.max(0, y)) * width + Math.min(width - 1, Math.max(0, x))];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = values[y * width + x];
      if (paper(v)) continue;
      let uniform = true;
      for (let dy = -1; dy <= 1 && uniform; dy++) for (let dx = -1; dx <= 1 && uniform; dx++) uniform = at(y + dy, x + dx) === v;
      if (uniform) interior++;
    }
  }
  return interior / values.length < 0.01;
}

/** Nearest-neighbour resize of a label map by pixel centres. */
export function resizeLabels(labels, height, width, outH, outW) {
  const out = new Int32Array(outH * outW);
  for (let i = 0; i < outH; i++) {
    const r = Math.min(Math.floor(((i + 0.5) * height) / outH), height - 1);
    for (let j = 0; j < outW; j++) {
      const c = Math.min(Math.floor(((j + 0.5) * width) / outW), width - 1);
      out[i * outW + j] = labels[r * width + c];
    }
  }
  return out;
}

function labelSet(labels) {
  const set = new Set();
  for (let p = 0; p < labels.length; p++) if (labels[p] >= 0) set.add(labels[p]);
  return [...set].sort((a, b) => a - b);
}

function meanColours(labels, planar, pixels) {
  const sums = new Map();
  for (let p = 0; p < pixels; p++) {
    const l = labels[p];
    if (l < 0) continue;
    const s = sums.get(l) ?? [0, 0, 0, 0];
    s[0] += planar[p];
    s[1] += planar[pixels + p];
    s[2] += planar[2 * pixels + p];
    s[3] += 1;
    sums.set(l, s);
  }
  const means = new Map();
  for (const [l, s] of sums) means.set(l, [s[0] / s[3], s[1] / s[3], s[2] / s[3]]);
  return means;
}

/**
 * The label rule `dpst fast` applies to mask files before the model (labels/one_pass.py):
 * labels of any value in, labels 0..n-1 (the same numbers in both maps) out.
 * 1. Decided on copies of at most 512 px: a content label the style lacks (an orphan) takes
 *    the style label of the nearest mean colour (ties: the smaller label).
 * 2. Applied at full size: orphans relabelled, then only labels in both maps kept (others -1),
 *    renumbered in increasing order; more than maxLabels is an error.
 * Returns {content, style, labelIds, orphans}.
 */
export function prepareLabels(contentLabels, styleLabels, content, style, maxLabels) {
  const small = (labels, image) => {
    const side = Math.min(LABEL_WORK_SIDE, Math.max(image.height, image.width));
    const [h, w] = maskSize(image.height, image.width, side);
    return {
      labels: resizeLabels(labels, image.height, image.width, h, w),
      planar: resizePlanar(image.data, image.height, image.width, h, w),
      pixels: h * w,
    };
  };
  const c = small(contentLabels, content);
  const s = small(styleLabels, style);
  const styleIds = labelSet(s.labels);
  if (!styleIds.length) throw new InputError('the style label map has no labelled pixel');
  const orphans = new Map();
  const contentIds = labelSet(c.labels);
  const orphanIds = contentIds.filter((k) => !styleIds.includes(k));
  if (orphanIds.length) {
    const styleMeans = meanColours(s.labels, s.planar, s.pixels);
    const contentMeans = meanColours(c.labels, c.planar, c.pixels);
    for (const orphan of orphanIds) {
      const mean = contentMeans.get(orphan);
      let best = null;
      let bestDistance = Infinity;
      for (const k of styleIds) {
        const m = styleMeans.get(k);
        const d = (m[0] - mean[0]) ** 2 + (m[1] - mean[1]) ** 2 + (m[2] - mean[2]) ** 2;
        if (d < bestDistance) [best, bestDistance] = [k, d];
      }
      orphans.set(orphan, best);
    }
  }
  if (!contentIds.length) throw new InputError('the content mask labels no pixel (every pixel is unlabelled)');
  const relabelled = Int32Array.from(contentLabels, (l) => orphans.get(l) ?? l);
  const inStyle = new Set(labelSet(styleLabels));
  const ids = labelSet(relabelled).filter((k) => inStyle.has(k));
  if (ids.length > maxLabels) {
    throw new InputError(
      `the masks use ${ids.length} labels but the model handles at most ${maxLabels}; merge some regions`);
  }
  const number = new Map(ids.map((k, i) => [k, i]));
  return {
    content: Int32Array.from(relabelled, (l) => number.get(l) ?? -1),
    style: Int32Array.from(styleLabels, (l) => number.get(l) ?? -1),
    labelIds: ids,
    orphans: Object.fromEntries(orphans),
  };
}

// ---- label weights (step 7) -----------------------------------------------------------------

const FEATHER_RADIUS = 8;
const FEATHER_EPS = 1e-3;
const FEATHER_BAND = 4;
const FEATHER_BAND_GAIN = 4;
const LUMA_REC601 = [0.299, 0.587, 0.114];

/** Box mean of side 2r+1 over the last two axes of (n, h, w) float64, edges repeated
 * (scipy.ndimage.uniform_filter, mode "nearest"). */
function boxMean(x, n, h, w, r) {
  const size = 2 * r + 1;
  const tmp = new Float64Array(x.length);
  const out = new Float64Array(x.length);
  for (let k = 0; k < n; k++) {
    const base = k * h * w;
    for (let i = 0; i < h; i++) {
      const row = base + i * w;
      let sum = 0;
      for (let t = -r; t <= r; t++) sum += x[row + Math.min(w - 1, Math.max(0, t))];
      for (let j = 0; j < w; j++) {
        tmp[row + j] = sum / size;
        sum += x[row + Math.min(w - 1, j + r + 1)] - x[row + Math.max(0, j - r)];
      }
    }
    for (let j = 0; j < w; j++) {
      let sum = 0;
      for (let t = -r; t <= r; t++) sum += tmp[base + Math.min(h - 1, Math.max(0, t)) * w + j];
      for (let i = 0; i < h; i++) {
        out[base + i * w + j] = sum / size;
        sum += tmp[base + Math.min(h - 1, i + r + 1) * w + j] - tmp[base + Math.max(0, i - r) * w + j];
      }
    }
  }
  return out;
}

/** Guided filter of weights (L, h, w) by the luma guide (h, w), float64; clamped at 0 and
 * renormalised to sum 1 over L, then taken only near the labels' borders: w + n (f - w),
 * n = min(1, gain (1 - max over L of the band-radius box mean of w)) (Python:
 * render_plan.feather_weights). */
export function featherWeights(weights, count, guide, h, w, radius = FEATHER_RADIUS, eps = FEATHER_EPS,
  band = FEATHER_BAND, gain = FEATHER_BAND_GAIN) {
  const plane = h * w;
  const g = Float64Array.from(guide);
  const meanI = boxMean(g, 1, h, w, radius);
  const varI = boxMean(g.map((v) => v * v), 1, h, w, radius);
  for (let p = 0; p < plane; p++) varI[p] -= meanI[p] * meanI[p];
  const wts = Float64Array.from(weights);
  const meanW = boxMean(wts, count, h, w, radius);
  const gw = new Float64Array(wts.length);
  for (let k = 0; k < count; k++) for (let p = 0; p < plane; p++) gw[k * plane + p] = g[p] * wts[k * plane + p];
  const meanGW = boxMean(gw, count, h, w, radius);
  const a = new Float64Array(wts.length);
  const b = new Float64Array(wts.length);
  for (let k = 0; k < count; k++) {
    for (let p = 0; p < plane; p++) {
      const q = k * plane + p;
      a[q] = (meanGW[q] - meanI[p] * meanW[q]) / (varI[p] + eps);
      b[q] = meanW[q] - a[q] * meanI[p];
    }
  }
  const meanA = boxMean(a, count, h, w, radius);
  const meanB = boxMean(b, count, h, w, radius);
  const out = new Float64Array(wts.length);
  const total = new Float64Array(plane);
  for (let k = 0; k < count; k++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.max(meanA[k * plane + p] * g[p] + meanB[k * plane + p], 0);
      out[k * plane + p] = v;
      total[p] += v;
    }
  }
  const share = boxMean(wts, count, h, w, band);
  const near = new Float64Array(plane);
  for (let p = 0; p < plane; p++) {
    let most = 0;
    for (let k = 0; k < count; k++) most = Math.max(most, share[k * plane + p]);
    near[p] = Math.min(1, Math.max(0, gain * (1 - most)));
  }
  const result = new Float32Array(wts.length);
  for (let k = 0; k < count; k++) {
    for (let p = 0; p < plane; p++) {
      const q = k * plane + p;
      const feathered = out[q] / Math.max(total[p], 2.2250738585072014e-308);
      result[q] = wts[q] + near[p] * (feathered - wts[q]);
    }
  }
  return result;
}

/**
 * The renderer's label weights for a content and its label map (model labels 0..K-1, -1
 * unlabelled): {data (L, h, w) float32, dims [1, L, h, w], channels: which of the stylizer's
 * K+1 label maps each weight channel goes with}. No label map: one channel, the whole image's.
 */
export function labelWeights(labels, content, numLabels, longSide = LABEL_LONG_SIDE) {
  if (labels == null) return { data: new Float32Array([1]), dims: [1, 1, 1, 1], channels: [numLabels] };
  const { height, width } = content;
  checkLabels(labels, width, height, numLabels, 'content labels');
  const [h, w] = maskSize(height, width, longSide);
  const plane = h * w;
  const masks = labelsToMasks(labels, height, width, numLabels, h, w);
  const weights = new Float32Array((numLabels + 1) * plane);
  for (let p = 0; p < plane; p++) {
    let total = 0;
    for (let k = 0; k < numLabels; k++) total = f32(total + masks[k * plane + p]);
    const divisor = Math.max(total, 1);
    let labelled = 0;
    for (let k = 0; k < numLabels; k++) {
      const v = f32(masks[k * plane + p] / divisor);
      weights[k * plane + p] = v;
      labelled = f32(labelled + v);
    }
    // What the labels leave below 1 is the whole image's (round-off below 0 clamped).
    weights[numLabels * plane + p] = Math.max(f32(1 - labelled), 0);
  }
  const channels = [];
  for (let k = 0; k <= numLabels; k++) {
    for (let p = 0; p < plane; p++) {
      if (weights[k * plane + p] > 0) {
        channels.push(k);
        break;
      }
    }
  }
  const kept = new Float32Array(channels.length * plane);
  channels.forEach((k, i) => kept.set(weights.subarray(k * plane, (k + 1) * plane), i * plane));
  const small = resizePlanar(content.data, height, width, h, w);
  const guide = new Float32Array(plane);
  const luma = LUMA_REC601.map(f32);
  for (let p = 0; p < plane; p++) {
    guide[p] = f32(f32(f32(luma[0] * small[p]) + f32(luma[1] * small[plane + p])) + f32(luma[2] * small[2 * plane + p]));
  }
  const data = featherWeights(kept, channels.length, guide, h, w);
  return { data, dims: [1, channels.length, h, w], channels };
}

// ---- strength, positions, highlights (steps 8-10) -------------------------------------------

export function checkStrength(value, name = 'strength') {
  const s = typeof value === 'number' ? value : Number(value);
  if (value === '' || value == null || !Number.isFinite(s) || s < STRENGTH_MIN || s > STRENGTH_MAX) {
    throw new InputError(`${name} must be between ${STRENGTH_MIN} and ${STRENGTH_MAX} (0 = the content, 1 = the full look), got ${value}`);
  }
  return s;
}

const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]; // the 3x4 identity map, row-major

/** The plan giving content + s (raw - content): format 4 scales the residual grid by s and
 * moves each label map s of the way from the identity; format 3 blends the grid with the
 * identity grid. Python: render_plan.blend_plan, strength.blend_grid. */
export function blendPlan(plan, strength) {
  if (strength === 1) return plan;
  const s = f32(strength);
  if (plan.labelMaps == null) {
    const cell = plan.grid.length / 12;
    const grid = new Float32Array(plan.grid.length);
    for (let c = 0; c < 12; c++) {
      const id = IDENTITY[c];
      for (let q = c * cell; q < (c + 1) * cell; q++) grid[q] = f32(id + f32(s * f32(plan.grid[q] - id)));
    }
    return { ...plan, grid };
  }
  const grid = plan.grid.map((v) => f32(s * v));
  const labelMaps = plan.labelMaps.map((v, q) => f32(IDENTITY[q % 12] + f32(s * f32(v - IDENTITY[q % 12]))));
  return { ...plan, grid, labelMaps };
}

/** Grid coordinates of pixels start..stop-1 of an axis of `size` pixels on `cells` cells:
 * clamp((i + 0.5) * (cells / size) - 0.5, 0, cells - 1) in float32. */
export function cellPositions(start, stop, size, cells) {
  const out = new Float32Array(stop - start);
  const step = f32(cells / size);
  for (let i = start; i < stop; i++) {
    const v = f32(f32(f32(i + 0.5) * step) - 0.5);
    out[i - start] = Math.min(Math.max(v, 0), cells - 1);
  }
  return out;
}

export function rowBands(height, width, bandPixels = BAND_PIXELS) {
  const rows = Math.max(1, Math.floor(bandPixels / Math.max(1, width)));
  const bands = [];
  for (let start = 0; start < height; start += rows) bands.push([start, Math.min(height, start + rows)]);
  return bands;
}

const V_LOW = 0.97, V_HIGH = 0.995, S_LOW = 0.06, S_HIGH = 0.2;
const AREA_LOW = 0.02, AREA_HIGH = 0.08, AREA_SAMPLES = 1 << 16;
const MIN_TINT_LUMA = 0.85, BRIGHT_SIGMAS = 2;
const LUMA_REC709 = [0.2126, 0.7152, 0.0722];

function smoothstep(low, high, x) {
  const t = Math.min(Math.max(f32(f32(x - f32(low)) * f32(1 / (high - low))), 0), 1);
  return f32(f32(t * t) * f32(3 - f32(2 * t)));
}

/** How much a pixel (float32 r, g, b) is a clipped, near-neutral highlight, in [0, 1]. */
export function highlightWeight(r, g, b) {
  const top = Math.max(r, g, b);
  const low = Math.min(r, g, b);
  const sat = f32(f32(top - low) / Math.max(top, f32(1e-6)));
  return f32(smoothstep(V_LOW, V_HIGH, top) * f32(1 - smoothstep(S_LOW, S_HIGH, sat)));
}

/** The look's highlight tint (3,) from the style's whole-image colour mean (3) and
 * covariance (9), at this strength (Python: highlights.highlight_tint, float64). */
export function highlightTint(mean, cov, strength) {
  const u = 1 / 3;
  const spread = [0, 1, 2].map((i) => cov[3 * i] * u + cov[3 * i + 1] * u + cov[3 * i + 2] * u);
  const sigma = Math.sqrt(Math.max(u * spread[0] + u * spread[1] + u * spread[2], 0));
  let bright = [0, 1, 2].map((i) => mean[i] + (sigma > 1e-6 ? (BRIGHT_SIGMAS * spread[i]) / sigma : 0));
  bright = bright.map((v) => Math.max(v, 1e-3));
  const top = Math.max(...bright);
  let tint = bright.map((v) => Math.min(Math.max(v / top, 0), 1));
  const luma = LUMA_REC709[0] * tint[0] + LUMA_REC709[1] * tint[1] + LUMA_REC709[2] * tint[2];
  if (luma < MIN_TINT_LUMA) tint = tint.map((t) => 1 - ((1 - MIN_TINT_LUMA) / (1 - luma)) * (1 - t));
  // At the brightness the style's brightest region reaches (white at most).
  const level = Math.min(1, top);
  tint = tint.map((t) => Math.min(Math.max(1 + strength * (t * level - 1), 0), 1));
  return tint.map(f32);
}

/** How much protection the image gets, in [0, 1]: none when highlights (mean weight on a
 * lattice of about 65536 pixels) cover 8 % or more, full up to 2 %. */
export function highlightAmount(image) {
  const { data, width, height } = image;
  const step = Math.max(1, Math.ceil(Math.sqrt((height * width) / AREA_SAMPLES)));
  const scale = f32(1 / 255);
  let sum = 0;
  let count = 0;
  for (let y = Math.floor(step / 2); y < height; y += step) {
    for (let x = Math.floor(step / 2); x < width; x += step) {
      const p = (y * width + x) * 3;
      sum += highlightWeight(f32(data[p] * scale), f32(data[p + 1] * scale), f32(data[p + 2] * scale));
      count++;
    }
  }
  return 1 - smoothstep(AREA_LOW, AREA_HIGH, f32(sum / count));
}

/** Planar band (3, n) of the renderer's output, with the content's highlights blended toward
 * the tinted content (in place). Python: highlights.protect_highlights. */
export function protectHighlights(content, output, n, tint, amount) {
  const luma = LUMA_REC709.map(f32);
  const a = f32(amount);
  for (let p = 0; p < n; p++) {
    const c0 = content[p], c1 = content[n + p], c2 = content[2 * n + p];
    const weight = f32(highlightWeight(c0, c1, c2) * a);
    if (!(weight > 0)) continue;
    const m = [output[p], output[n + p], output[2 * n + p]];
    let t = [f32(c0 * tint[0]), f32(c1 * tint[1]), f32(c2 * tint[2])];
    const targetLuma = f32(f32(f32(t[0] * luma[0]) + f32(t[1] * luma[1])) + f32(t[2] * luma[2]));
    const mappedLuma = f32(f32(f32(m[0] * luma[0]) + f32(m[1] * luma[1])) + f32(m[2] * luma[2]));
    // Toward white until the luma is the mapped colour's, when that is brighter.
    let lift = f32(f32(mappedLuma - targetLuma) / Math.max(f32(1 - targetLuma), f32(1e-6)));
    lift = Math.min(Math.max(lift, 0), 1);
    t = t.map((v) => f32(v + f32(lift * f32(1 - v))));
    for (let c = 0; c < 3; c++) output[c * n + p] = Math.min(Math.max(f32(m[c] + f32(weight * f32(t[c] - m[c]))), 0), 1);
  }
}

/** float32 in [0, 1] -> 8 bits: round(v * 255), halves to even (NumPy's rint). */
function toByte(v) {
  const x = f32(v * 255);
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---- the whole pass ---------------------------------------------------------------------------

export class Stylizer {
  constructor(ort, stylizer, encoder, renderer, options = {}) {
    this.ort = ort;
    this.stylizer = stylizer.session;
    this.encoder = encoder.session;
    this.renderer = renderer.session;
    this.metadata = stylizer.meta;
    this.formatVersion = stylizer.meta.format_version;
    this.maxLabels = stylizer.meta.max_labels;
    this.workingSize = stylizer.meta.config.working_size;
    this.labelLongSide = LABEL_LONG_SIDE; // the runtime's choice, as in Python
    this.protectHighlights = options.protectHighlights ?? true;
    // Renderer runs in flight at once (Node runs them on its thread pool; the browser's wasm
    // session takes one at a time).
    this.renderWorkers = Math.max(1, options.renderWorkers ?? 1);
  }

  tensor(data, dims) {
    return new this.ort.Tensor('float32', data, dims);
  }

  /** The style code: {name: Tensor} (step 6). */
  async encodeStyle(style, styleLabels = null) {
    const { width, height } = style;
    const masks = masksForImage(styleLabels, height, width, this.maxLabels, this.workingSize, 'style labels');
    const pixels = planarBand(style.data, width, 0, height);
    const result = await this.encoder.run({
      style: this.tensor(pixels, [1, 3, height, width]),
      style_masks: this.tensor(masks.data, masks.dims),
    });
    return Object.fromEntries(STYLE_CODE.map((n) => [n, result[n]]));
  }

  /** The render plan: {grid, labelMaps, labelWeights} (step 7). */
  async plan(content, code, contentLabels = null) {
    const { width, height } = content;
    const size = this.workingSize;
    const masks = masksForImage(contentLabels, height, width, this.maxLabels, size, 'content labels');
    const feeds = {
      content: this.tensor(resizePlanar(content.data, height, width, size, size), [1, 3, size, size]),
      content_masks: this.tensor(masks.data, masks.dims),
      ...code,
    };
    if (this.formatVersion < 4) {
      const { grid } = await this.stylizer.run(feeds, ['grid']);
      return { grid: grid.data, gridDims: grid.dims, labelMaps: null };
    }
    const { grid, label_maps: maps } = await this.stylizer.run(feeds, ['grid', 'label_maps']);
    const weights = labelWeights(contentLabels, content, this.maxLabels, this.labelLongSide);
    const labelMaps = new Float32Array(weights.channels.length * 12);
    weights.channels.forEach((k, i) => labelMaps.set(maps.data.subarray(k * 12, (k + 1) * 12), i * 12));
    return { grid: grid.data, gridDims: grid.dims, labelMaps, labelWeights: weights };
  }

  /** The look's tint for clipped highlights, or null when protection is off. */
  highlightTint(code, strength) {
    if (!this.protectHighlights) return null;
    const k = this.maxLabels; // the last label is the whole style photo's
    const mean = code.style_colour_mean.data.subarray(k * 3, k * 3 + 3);
    const cov = code.style_colour_cov.data.subarray(k * 9, k * 9 + 9);
    return highlightTint(Array.from(mean), Array.from(cov), strength);
  }

  /** Renders a plan band by band into interleaved uint8 RGB (steps 8-11). `onBand(done,
   * total)` reports progress. */
  async render(content, plan, tint = null, onBand = null) {
    const { width, height, data } = content;
    const out = new Uint8Array(width * height * 3);
    const [, , , gridH, gridW] = plan.gridDims; // (1, 12, luma bins, rows, columns)
    const grid = this.tensor(plan.grid, plan.gridDims);
    const cols = this.tensor(cellPositions(0, width, width, gridW), [width]);
    let labels = null;
    if (plan.labelMaps != null) {
      const [, count, lh, lw] = plan.labelWeights.dims;
      labels = {
        label_weights: this.tensor(plan.labelWeights.data, plan.labelWeights.dims),
        label_maps: this.tensor(plan.labelMaps, [1, count, 3, 4]),
        label_cols: this.tensor(cellPositions(0, width, width, lw), [width]),
        lh,
      };
    }
    const amount = tint == null ? 0 : highlightAmount(content);
    const bands = rowBands(height, width);
    let done = 0;
    const renderBand = async ([start, stop]) => {
      const rows = stop - start;
      const n = rows * width;
      const band = planarBand(data, width, start, stop);
      const feeds = {
        content: this.tensor(band, [1, 3, rows, width]),
        grid,
        rows: this.tensor(cellPositions(start, stop, height, gridH), [rows]),
        cols,
      };
      if (labels) {
        feeds.label_weights = labels.label_weights;
        feeds.label_maps = labels.label_maps;
        feeds.label_cols = labels.label_cols;
        feeds.label_rows = this.tensor(cellPositions(start, stop, height, labels.lh), [rows]);
      }
      const result = (await this.renderer.run(feeds)).output;
      const rgb = result.data;
      if (amount > 0) protectHighlights(band, rgb, n, tint, amount);
      let dst = start * width * 3;
      for (let p = 0; p < n; p++, dst += 3) {
        out[dst] = toByte(rgb[p]);
        out[dst + 1] = toByte(rgb[n + p]);
        out[dst + 2] = toByte(rgb[2 * n + p]);
      }
      result.dispose?.(); // the browser's wasm heap is freed per band, not at garbage collection
      done++;
      onBand?.(done, bands.length);
    };
    const workers = Math.min(this.renderWorkers, bands.length);
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let b = w; b < bands.length; b += workers) await renderBand(bands[b]);
      }),
    );
    return out;
  }

  /**
   * content, style: {data: interleaved RGB uint8, width, height}. Labels: both or neither,
   * model labels 0..K-1 (-1 unlabelled), e.g. from prepareLabels. strength in [0, 2].
   * Returns interleaved RGB uint8 of the content's size.
   */
  async stylize(content, style, { contentLabels = null, styleLabels = null, strength = 1, onBand = null } = {}) {
    if ((contentLabels == null) !== (styleLabels == null)) throw new InputError('give label maps for both images or for neither');
    strength = checkStrength(strength);
    for (const [name, image] of [['content', content], ['style', style]]) {
      if (!(image?.width >= 1 && image?.height >= 1 && image.data?.length === image.width * image.height * 3)) {
        throw new InputError(`${name} must be {data: RGB bytes, width, height}`);
      }
    }
    const code = await this.encodeStyle(style, styleLabels);
    const plan = await this.plan(content, code, contentLabels);
    return this.render(content, blendPlan(plan, strength), this.highlightTint(code, strength), onBand);
  }
}
