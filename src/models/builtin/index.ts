import { z } from 'zod';
import type { ModelRunner } from '../types';
import { createEsrganModel, type EsrganHooks } from './esrgan';
import { createNoopModel, NoopOptions } from './noop';

/** Default bound on ESRGAN input size: keeps one CPU run in seconds on a small machine. */
export const ESRGAN_DEFAULT_MAX_PIXELS = 128 * 128;

const EsrganOptions = z
  .object({ maxInputPixels: z.number().int().positive().default(ESRGAN_DEFAULT_MAX_PIXELS) })
  .strict();

/**
 * Code-only hooks of the built-in models, by built-in name. Only code that builds the runners passes them (a
 * test that must hold a run at a known point); a models file cannot, since `backend.options` schemas are strict.
 */
export interface BuiltinHooks {
  esrgan?: EsrganHooks;
}

/** Built-in models by the name a models file uses in `backend.name`; each parses its own `backend.options`. */
export const builtinModels: Record<string, (options: unknown, hooks: BuiltinHooks) => ModelRunner> = {
  esrgan: (options, hooks) => createEsrganModel(EsrganOptions.parse(options), hooks.esrgan),
  noop: (options) => createNoopModel(NoopOptions.parse(options)),
};
