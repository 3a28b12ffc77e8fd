import { z } from 'zod';
import { OptionalPeers } from '../../optional-peers';
import type { ModelContext, ModelRunner } from '../types';
import { createNoopModel, NoopOptions } from './noop';

/** Default bound on ESRGAN input size: keeps one CPU run in seconds on a small machine. */
export const ESRGAN_DEFAULT_MAX_PIXELS = 128 * 128;

const EsrganOptions = z
  .object({ maxInputPixels: z.number().int().positive().default(ESRGAN_DEFAULT_MAX_PIXELS) })
  .strict();

/** Built-in models by the name a models file uses in `backend.name`; each parses its own `backend.options`. */
export const builtinModels: Record<string, (options: unknown) => ModelRunner> = {
  esrgan: (options) => {
    const parsed = EsrganOptions.parse(options);
    // TensorFlow.js is an optional peer (about 270 MB) and takes a while to load: only a process that runs
    // this model loads it, at its first run. `require` rather than `import()`: this package compiles to
    // CommonJS, where an `import()` of a relative module would need a `.js` path that tsx and jest do not map.
    let model: ModelRunner | undefined;
    const load = (): ModelRunner => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const esrgan = require('./esrgan') as typeof import('./esrgan');
      return (model ??= esrgan.createEsrganModel(parsed));
    };
    return { run: (input: unknown, ctx: ModelContext) => load().run(input, ctx) };
  },
  noop: (options) => createNoopModel(NoopOptions.parse(options)),
};

/** The optional peer dependencies each built-in model needs; checked when its runner is built. */
export const builtinPeers: Record<string, readonly string[]> = {
  esrgan: OptionalPeers.esrgan,
};
