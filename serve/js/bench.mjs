// The Node row of bench/onnx.py: one pass end to end with the style code cached, as its `ort`
// worker times FastStylizer.stylize. Prints one JSON line.
// node bench.mjs --model M --size WxH [--threads N] [--repeats R] [--no-labels]
import { parseArgs } from 'node:util';

import { blendPlan, openNodeModel } from './node.mjs';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    size: { type: 'string' },
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '3' },
    'no-labels': { type: 'boolean', default: false },
  },
});
const [width, height] = values.size.split('x').map(Number);
const STYLE = [512, 512];
const LABELS = 4;

// Seeded noise (a linear congruential generator): the content's values do not change the cost.
let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const image = (w, h) => ({ data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(random() * 256)), width: w, height: h });
const bands = (w, h) => Int32Array.from({ length: w * h }, (_, p) => Math.floor((Math.floor(p / w) * LABELS) / h));

const threads = Number(values.threads);
const stylizer = await openNodeModel(values.model, { threads, warn: () => {} });
const content = image(width, height);
const style = image(...STYLE);
const labelled = !values['no-labels'];
const contentLabels = labelled ? bands(width, height) : null;
const code = await stylizer.encodeStyle(style, labelled ? bands(...STYLE) : null);
const idle = process.memoryUsage().rss / 2 ** 20;

async function once() {
  const plan = await stylizer.plan(content, code, contentLabels);
  return stylizer.render(content, blendPlan(plan, 1), stylizer.highlightTint(code, 1));
}

let start = performance.now();
await once();
const first = (performance.now() - start) / 1000;
const walls = [];
const cpus = [];
for (let i = 0; i < Number(values.repeats); i++) {
  const cpu = process.cpuUsage();
  start = performance.now();
  await once();
  walls.push((performance.now() - start) / 1000);
  const used = process.cpuUsage(cpu);
  cpus.push((used.user + used.system) / 1e6);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(JSON.stringify({
  first_s: first,
  wall_s: median(walls),
  cpu_s: median(cpus),
  peak_mib: process.resourceUsage().maxRSS / 1024,
  idle_mib: idle,
  provider: `onnxruntime-node CPU (${threads} thread(s))`,
}));
