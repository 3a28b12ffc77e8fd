import { z } from 'zod';
import { parseInput } from '../input-validation';
import type { ModelContext, ModelRunner } from '../types';
import type { StoredFile } from '../../storage/file-store';
import { decodeImage, encodePng, fetchImage, upscaleAlpha } from './esrgan-image';
import { loadEsrgan } from './esrgan-network';
import { upscale, type TileHook } from './esrgan-tiling';

export type { TileProgress } from './esrgan-tiling';

/** Input of fal's `fal-ai/esrgan`, as far as the built-in model supports it. */
export const EsrganInput = z.object({
  image_url: z.string().refine((url) => /^(https?:\/\/|data:)/i.test(url), {
    message: 'must be an http(s) URL or a data URI',
  }),
  /** Upscaling factor; each has its own set of weights. @default 2 */
  scale: z.literal([2, 3, 4]).default(2),
});
export type EsrganInput = z.infer<typeof EsrganInput>;

/** Output of fal's `fal-ai/esrgan`: the upscaled PNG and its size. */
export interface EsrganOutput {
  image: StoredFile & { width: number; height: number };
}

/** Options of {@link createEsrganModel}. */
export interface EsrganOptions {
  /** Largest `width * height` of an input image; CPU time grows linearly with it (about 1 ms per pixel). */
  maxInputPixels: number;
}

/**
 * Code-only hooks into a run, never read from the models file: a test holds a run at a known point with them
 * instead of betting on how fast the CPU is.
 */
export interface EsrganHooks {
  /**
   * Awaited before each tile of the network, after the yield to the event loop and before the cancellation
   * check: a run held here has logged its progress so far, keeps heartbeating, and stops at once when it was
   * cancelled meanwhile. Without it the loop awaits nothing but the yield.
   */
  beforeTile?: TileHook;
}

/**
 * The built-in `fal-ai/esrgan`: UpscalerJS's ESRGAN-slim weights run on TensorFlow.js's pure JavaScript
 * CPU backend, inside the worker process.
 *
 * The network runs one layer at a time, each layer in tiles small enough to compute in tens of
 * milliseconds, with a yield to the event loop between tiles: the same process runs Temporal workers,
 * whose heartbeats and polls must not starve. Per-layer tiles take their halo from the layer's real
 * input, so the result equals running the whole image at once (no seams), without recomputing overlaps.
 */
export function createEsrganModel(options: EsrganOptions, hooks: EsrganHooks = {}): ModelRunner {
  return {
    async run(input: unknown, ctx: ModelContext): Promise<EsrganOutput> {
      const { image_url: imageUrl, scale } = parseInput(EsrganInput, input);
      const image = decodeImage(await fetchImage(imageUrl, ctx), options.maxInputPixels);

      const started = Date.now();
      const model = await loadEsrgan(scale);
      ctx.log(`loaded model x${scale} (${Date.now() - started} ms)`);
      const outWidth = image.width * scale;
      const outHeight = image.height * scale;
      ctx.log(`upscaling ${image.width}x${image.height} -> ${outWidth}x${outHeight}`);

      const rgb = await upscale(model, image, ctx, hooks.beforeTile);
      const data = await encodePng(rgb, outWidth, outHeight, image.alpha && upscaleAlpha(image, scale));
      ctx.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // A request cancelled while the PNG was being packed leaves no orphaned file behind.
      ctx.signal.throwIfAborted();
      const stored = await ctx.saveFile({ data, contentType: 'image/png', fileName: 'upscaled.png' });
      return { image: { ...stored, width: outWidth, height: outHeight } };
    },
  };
}
