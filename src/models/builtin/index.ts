import { z } from 'zod';
import type { ModelRunner } from '../types';
import { createEsrganModel } from './esrgan';
import { createNoopModel, NoopOptions } from './noop';

/** Default bound on ESRGAN input size: keeps one CPU run in seconds on a small machine. */
export const ESRGAN_DEFAULT_MAX_PIXELS = 128 * 128;

const EsrganOptions = z
  .object({ maxInputPixels: z.number().int().positive().default(ESRGAN_DEFAULT_MAX_PIXELS) })
  .strict();

/** Built-in models by the name a models file uses in `backend.name`; each parses its own `backend.options`. */
export const builtinModels: Record<string, (options: unknown) => ModelRunner> = {
  esrgan: (options) => createEsrganModel(EsrganOptions.parse(options)),
  noop: (options) => createNoopModel(NoopOptions.parse(options)),
};
