#!/usr/bin/env node
// node stylize.mjs CONTENT STYLE -o OUTPUT [--strength S] [--content-mask M --style-mask M]
//                  [--model MODEL.onnx] [--threads N]
// One pass of the dpst model (the bundled one unless --model) on ONNX Runtime for Node, as
// `dpst fast CONTENT STYLE -o OUTPUT --masks none` (or with the same mask files) does.
// Bad input: one line on stderr, exit 2.
import { parseArgs } from 'node:util';

import { InputError, checkStrength, openNodeModel, prepareLabels, readImage, readMask, writeImage, BUNDLED_MODEL } from './node.mjs';

const USAGE = 'usage: node stylize.mjs CONTENT STYLE -o OUTPUT [--strength S] [--content-mask M --style-mask M] [--model MODEL.onnx] [--threads N]';
const warn = (message) => process.stderr.write(`stylize.mjs: warning: ${message}\n`);

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        strength: { type: 'string', default: '1' },
        'content-mask': { type: 'string' },
        'style-mask': { type: 'string' },
        model: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new InputError(`${error.message.split('\n')[0]} (${USAGE})`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 2) throw new InputError(`give CONTENT and STYLE (${USAGE})`);
  if (!values.output) throw new InputError('give -o OUTPUT');
  if ((values['content-mask'] == null) !== (values['style-mask'] == null)) {
    throw new InputError('give --content-mask and --style-mask together, or neither');
  }
  const strength = checkStrength(values.strength, '--strength');
  let threads;
  if (values.threads != null) {
    threads = Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1) throw new InputError(`--threads must be a whole number from 1, got ${values.threads}`);
  }
  const [contentPath, stylePath] = positionals;
  const stylizer = await openNodeModel(values.model ?? BUNDLED_MODEL, { threads, warn });
  const content = await readImage(contentPath, warn);
  const style = await readImage(stylePath, warn);
  let labels = {};
  if (values['content-mask'] != null) {
    const contentMask = await readMask(values['content-mask'], content.width, content.height, warn);
    const styleMask = await readMask(values['style-mask'], style.width, style.height, warn);
    const prepared = prepareLabels(contentMask, styleMask, content, style, stylizer.maxLabels);
    labels = { contentLabels: prepared.content, styleLabels: prepared.style };
  }
  const rgb = await stylizer.stylize(content, style, { ...labels, strength });
  await writeImage(values.output, rgb, content.width, content.height);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof InputError) {
      process.stderr.write(`stylize.mjs: error: ${error.message.split('\n')[0]}\n`);
      process.exit(2);
    }
    throw error; // a bug: the whole stack
  },
);
