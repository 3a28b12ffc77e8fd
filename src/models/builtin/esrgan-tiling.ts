import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import type { ModelContext } from '../types';
import type { DecodedImage } from './esrgan-image';
import type { EsrganNetwork, Step } from './esrgan-network';

// Running the ESRGAN network one layer at a time, each layer in tiles small enough to compute in tens of
// milliseconds, with a yield to the event loop between tiles.

/**
 * Multiply-accumulates per synchronous block: 30-60 ms on tfjs's CPU backend (4-8 ns per MAC on a small,
 * busy server). Smaller budgets cost throughput: thin tiles copy their halo more often per MAC.
 */
const TILE_BUDGET = 8_000_000;

/** A layer's output between steps: plain NHWC values, so no tensor outlives a tile. */
interface Activation {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

interface Tile {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Splits a `height x width` layer input into tiles of about `TILE_BUDGET / costPerPixel` pixels. */
function tilesOf(height: number, width: number, costPerPixel: number): Tile[] {
  const pixels = Math.max(1, Math.floor(TILE_BUDGET / costPerPixel));
  // Full-width bands when a row fits, otherwise equal pieces of one row; even sizes avoid a tiny last tile.
  const tileWidth = Math.ceil(width / Math.ceil(width / Math.min(width, pixels)));
  const bandHeight = Math.max(1, Math.min(height, Math.floor(pixels / tileWidth)));
  const tileHeight = Math.ceil(height / Math.ceil(height / bandHeight));
  const tiles: Tile[] = [];
  for (let top = 0; top < height; top += tileHeight) {
    for (let left = 0; left < width; left += tileWidth) {
      tiles.push({ top, left, height: Math.min(tileHeight, height - top), width: Math.min(tileWidth, width - left) });
    }
  }
  return tiles;
}

/** Where a run is, as {@link TileHook} sees it: `done` tiles of `total` computed, the next one in layer `layer`. */
export interface TileProgress {
  done: number;
  total: number;
  layer: string;
}

/** Awaited before each tile; see `EsrganHooks.beforeTile`. */
export type TileHook = (progress: TileProgress, ctx: ModelContext) => Promise<void>;

/**
 * Runs the network on the image's RGB channels (0-255 in, 0-255 out) and returns the upscaled RGB values.
 * `beforeTile`, when given, is awaited before each tile, after the yield and before the cancellation check.
 */
export async function upscale(
  network: EsrganNetwork,
  image: DecodedImage,
  ctx: ModelContext,
  beforeTile?: TileHook,
): Promise<Float32Array> {
  const rgb = new Float32Array(image.width * image.height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = image.rgba[i]!;
    rgb[j + 1] = image.rgba[i + 1]!;
    rgb[j + 2] = image.rgba[i + 2]!;
  }

  const plan = network.steps.map((step) => {
    const tiles = tilesOf(image.height * step.resolution, image.width * step.resolution, step.costPerPixel);
    return { step, tiles };
  });
  const totalTiles = plan.reduce((sum, { tiles }) => sum + tiles.length, 0);
  let doneTiles = 0;
  let nextReport = 0.1;

  const values = new Map<string, Activation>([
    [network.input, { data: rgb, height: image.height, width: image.width, channels: 3 }],
  ]);
  const readers = new Map(network.readers);
  for (const { step, tiles } of plan) {
    const inputs = step.inputs.map((name) => values.get(name)!);
    const factor = step.kind === 'pixelwise' ? step.upsample : 1;
    const { height, width } = inputs[0]!;
    let out: Activation | undefined;

    for (const tile of tiles) {
      await yieldToEventLoop();
      if (beforeTile) await beforeTile({ done: doneTiles, total: totalTiles, layer: step.name }, ctx);
      ctx.signal.throwIfAborted();
      // Everything tfjs allocates for a tile is released here, before the next yield.
      tf.tidy(() => {
        const result = runTile(step, inputs, tile);
        const channels = result.shape[3];
        const target = (out ??= {
          data: new Float32Array(height * factor * width * factor * channels),
          height: height * factor,
          width: width * factor,
          channels,
        });
        copyTile(result.dataSync() as Float32Array, tile, factor, target, step.kind === 'conv' ? step.bias : undefined);
      });
      doneTiles++;
      if (doneTiles / totalTiles >= nextReport && doneTiles < totalTiles) {
        ctx.log(`tile ${doneTiles}/${totalTiles} (layer ${step.name})`);
        nextReport += 0.1;
      }
    }

    values.set(step.name, out!);
    for (const name of step.inputs) {
      const left = (readers.get(name) ?? 0) - 1;
      readers.set(name, left);
      if (left <= 0) values.delete(name);
    }
  }
  return values.get(network.output)!.data;
}

/**
 * Computes one tile of one layer. A convolution's tile carries a halo of its neighbours' pixels (zeros
 * past the image's edges, as 'same' padding would), built by hand: tfjs's slice and pad fall back to
 * per-element index arithmetic on the CPU backend, several times slower than the copy below.
 */
function runTile(step: Step, inputs: Activation[], tile: Tile): tf.Tensor4D {
  if (step.kind === 'pixelwise') {
    const tensors = inputs.map((input) => tileTensor(input, tile, 0));
    return step.layer.apply(tensors.length === 1 ? tensors[0]! : tensors) as tf.Tensor4D;
  }
  return tf.conv2d(tileTensor(inputs[0]!, tile, (step.size - 1) / 2), step.kernel, 1, 'valid');
}

function tileTensor(input: Activation, tile: Tile, halo: number): tf.Tensor4D {
  const { data, height, width, channels } = input;
  const tileWidth = tile.width + 2 * halo;
  const tileHeight = tile.height + 2 * halo;
  const values = new Float32Array(tileHeight * tileWidth * channels);
  const left = Math.max(0, tile.left - halo);
  const right = Math.min(width, tile.left + tile.width + halo);
  for (let row = 0; row < tileHeight; row++) {
    const y = tile.top - halo + row;
    if (y < 0 || y >= height) continue;
    const source = (y * width + left) * channels;
    const target = (row * tileWidth + (left - (tile.left - halo))) * channels;
    values.set(data.subarray(source, source + (right - left) * channels), target);
  }
  return tf.tensor4d(values, [1, tileHeight, tileWidth, channels]);
}

/** Copies a tile's result into the layer's output at its place, adding the convolution's bias if any. */
function copyTile(result: Float32Array, tile: Tile, factor: number, out: Activation, bias?: Float32Array): void {
  const channels = out.channels;
  const rowLength = tile.width * factor * channels;
  for (let row = 0; row < tile.height * factor; row++) {
    const source = row * rowLength;
    const target = ((tile.top * factor + row) * out.width + tile.left * factor) * channels;
    if (!bias) {
      out.data.set(result.subarray(source, source + rowLength), target);
      continue;
    }
    for (let i = 0; i < rowLength; i += channels) {
      for (let c = 0; c < channels; c++) out.data[target + i + c] = result[source + i + c]! + bias[c]!;
    }
  }
}
