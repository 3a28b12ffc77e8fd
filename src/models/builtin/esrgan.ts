import { readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { z } from 'zod';
import { InputValidationError } from '../../errors';
import { parseInput } from '../input-validation';
import type { FetchedInput, ModelContext, ModelRunner } from '../types';
import type { StoredFile } from '../../storage/file-store';

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
 * The built-in `fal-ai/esrgan`: UpscalerJS's ESRGAN-slim weights run on TensorFlow.js's pure JavaScript
 * CPU backend, inside the worker process.
 *
 * The network runs one layer at a time, each layer in tiles small enough to compute in tens of
 * milliseconds, with a yield to the event loop between tiles: the same process runs Temporal workers,
 * whose heartbeats and polls must not starve. Per-layer tiles take their halo from the layer's real
 * input, so the result equals running the whole image at once (no seams), without recomputing overlaps.
 */
export function createEsrganModel(options: EsrganOptions): ModelRunner {
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

      const rgb = await upscale(model, image, ctx);
      const data = await encodePng(rgb, outWidth, outHeight, image.alpha && upscaleAlpha(image, scale));
      ctx.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // A request cancelled while the PNG was being packed leaves no orphaned file behind.
      ctx.signal.throwIfAborted();
      const stored = await ctx.saveFile({ data, contentType: 'image/png', fileName: 'upscaled.png' });
      return { image: { ...stored, width: outWidth, height: outHeight } };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Input image

interface DecodedImage {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel, row-major. */
  rgba: Uint8Array;
  /** Whether any pixel is not fully opaque; only then does the output keep an alpha channel. */
  alpha: boolean;
}

async function fetchImage(url: string, ctx: ModelContext): Promise<FetchedInput> {
  try {
    return await ctx.fetchInput(url);
  } catch (err) {
    // Matched by name, not instanceof: the fetcher is injected and may come from another module instance.
    if (err instanceof Error && err.name === 'InputFetchError') {
      throw imageUrlError(`could not fetch image_url: ${err.message}`);
    }
    throw err;
  }
}

function imageUrlError(msg: string): InputValidationError {
  return new InputValidationError([{ loc: ['body', 'image_url'], msg, type: 'value_error' }]);
}

function decodeImage(file: FetchedInput, maxPixels: number): DecodedImage {
  const format = sniffFormat(file.data);
  if (!format) throw imageUrlError('unsupported image format: expected PNG or JPEG');

  // The header's size is checked before decoding, so a small file cannot expand into a huge bitmap.
  const size = format === 'png' ? pngSize(file.data) : jpegSize(file.data);
  if (!size) throw imageUrlError(`could not decode the ${format.toUpperCase()} image: no size in its header`);
  assertPixelLimit(size.width, size.height, maxPixels);

  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded =
      format === 'png'
        ? PNG.sync.read(file.data)
        : jpeg.decode(file.data, {
            useTArray: true,
            formatAsRGBA: true,
            maxResolutionInMP: Math.max(1, maxPixels / 1e6),
          });
  } catch (err) {
    throw imageUrlError(`could not decode the ${format.toUpperCase()} image: ${(err as Error).message}`);
  }
  assertPixelLimit(decoded.width, decoded.height, maxPixels);
  let alpha = false;
  for (let i = 3; i < decoded.data.length && !alpha; i += 4) alpha = decoded.data[i] !== 255;
  return { width: decoded.width, height: decoded.height, rgba: decoded.data, alpha };
}

function assertPixelLimit(width: number, height: number, maxPixels: number): void {
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw imageUrlError(
      `image is ${width}x${height} (${pixels} pixels); this model accepts at most ${maxPixels} pixels`,
    );
  }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function sniffFormat(data: Buffer): 'png' | 'jpeg' | undefined {
  if (data.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png';
  if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'jpeg';
  return undefined;
}

/** Width and height from the IHDR chunk, which the PNG spec puts first. */
function pngSize(data: Buffer): { width: number; height: number } | undefined {
  if (data.length < 24 || data.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
}

/** Width and height from the first start-of-frame segment, walking the JPEG's marker segments. */
function jpegSize(data: Buffer): { width: number; height: number } | undefined {
  let offset = 2;
  while (offset + 9 <= data.length) {
    if (data[offset] !== 0xff) return undefined;
    const marker = data[offset + 1]!;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: data.readUInt16BE(offset + 5), width: data.readUInt16BE(offset + 7) };
    }
    const standalone = marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9);
    offset += standalone ? 2 : 2 + data.readUInt16BE(offset + 2);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Output image

function upscaleAlpha(image: DecodedImage, scale: number): Uint8Array {
  const width = image.width * scale;
  const alpha = new Uint8Array(width * image.height * scale);
  for (let y = 0; y < image.height * scale; y++) {
    const row = Math.floor(y / scale) * image.width;
    for (let x = 0; x < width; x++) alpha[y * width + x] = image.rgba[(row + Math.floor(x / scale)) * 4 + 3]!;
  }
  return alpha;
}

/**
 * Writes RGB (or RGBA when the input had transparency, its alpha upscaled nearest-neighbour).
 * Packs as a stream so the deflate runs on libuv's thread pool rather than blocking the event loop.
 */
function encodePng(rgb: Float32Array, width: number, height: number, alpha: Uint8Array | false): Promise<Buffer> {
  const png = new PNG({ width, height, colorType: alpha ? 6 : 2 });
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    // The network's output is in 0-255 but overshoots a little near hard edges.
    png.data[i * 4] = clampByte(rgb[j]!);
    png.data[i * 4 + 1] = clampByte(rgb[j + 1]!);
    png.data[i * 4 + 2] = clampByte(rgb[j + 2]!);
    png.data[i * 4 + 3] = alpha ? alpha[i]! : 255;
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    png
      .pack()
      .on('data', (chunk: Buffer) => chunks.push(chunk))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject);
  });
}

function clampByte(value: number): number {
  return value <= 0 ? 0 : value >= 255 ? 255 : Math.round(value);
}

// ---------------------------------------------------------------------------------------------
// The network

/**
 * Multiply-accumulates per synchronous block: 30-60 ms on tfjs's CPU backend (4-8 ns per MAC on a small,
 * busy server). Smaller budgets cost throughput: thin tiles copy their halo more often per MAC.
 */
const TILE_BUDGET = 8_000_000;
/** Elementwise work (ReLU, add, concat, upsampling) is far cheaper per value than a MAC in a convolution. */
const ELEMENTWISE_COST = 4;

/** One layer, run tile by tile. `resolution` is its input's size relative to the image (after upsampling). */
type Step =
  | {
      kind: 'conv';
      name: string;
      inputs: [string];
      resolution: number;
      kernel: tf.Tensor4D;
      /** Added while copying each tile out: tfjs's broadcasting add is slow on the CPU backend. */
      bias: Float32Array;
      /** Kernel side: a tile reads (size - 1) / 2 extra pixels on each side. */
      size: number;
      costPerPixel: number;
    }
  | {
      kind: 'pixelwise';
      name: string;
      inputs: string[];
      resolution: number;
      layer: tf.layers.Layer;
      /** Output pixels per input pixel along each axis (UpSampling2D), otherwise 1. */
      upsample: number;
      costPerPixel: number;
    };

interface EsrganNetwork {
  input: string;
  output: string;
  steps: Step[];
  /** How many steps read each layer's output, so it is dropped after its last reader. */
  readers: Map<string, number>;
}

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

// Loaded once per process and scale; a failed load is forgotten so the next request tries again.
const networks = new Map<number, Promise<EsrganNetwork>>();

function loadEsrgan(scale: number): Promise<EsrganNetwork> {
  let network = networks.get(scale);
  if (!network) {
    network = loadNetwork(scale);
    networks.set(scale, network);
    network.catch(() => networks.delete(scale));
  }
  return network;
}

async function loadNetwork(scale: number): Promise<EsrganNetwork> {
  // Prod mode skips debug checks and the console banner that suggests installing tfjs-node.
  tf.enableProdMode();
  // Node has no WebGL; choosing the backend up front avoids tfjs trying (and warning about) it.
  await tf.setBackend('cpu');
  const dir = join(esrganPackageDir(), 'models', `x${scale}`);
  const manifest = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const weightSpecs = manifest.weightsManifest.flatMap((group) => group.weights);
  const shards = await Promise.all(
    manifest.weightsManifest.flatMap((group) => group.paths).map((path) => readFile(join(dir, path))),
  );
  const weights = Buffer.concat(shards);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  const model = await tf.loadLayersModel({
    load: async () => ({ modelTopology: manifest.modelTopology, weightSpecs, weightData }),
  });
  return planNetwork(model, scale);
}

/** The installed package's root; its `exports` map hides `package.json`, so walk up from the entry point. */
function esrganPackageDir(): string {
  let dir = dirname(require.resolve('@upscalerjs/esrgan-slim'));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string };
      if (name === '@upscalerjs/esrgan-slim') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the @upscalerjs/esrgan-slim package directory');
    dir = parent;
  }
}

/**
 * Turns the Keras graph into steps we can tile. Only layers whose output pixel depends on a known
 * neighbourhood of input pixels are accepted; anything else means the weights changed under us.
 */
function planNetwork(model: tf.LayersModel, scale: number): EsrganNetwork {
  const [inputLayer] = model.inputLayers;
  const [outputLayer] = model.outputLayers;
  if (!inputLayer || !outputLayer) throw new Error('ESRGAN model has no input or output layer');
  const resolution = new Map<string, number>([[inputLayer.name, 1]]);
  const readers = new Map<string, number>();
  const steps: Step[] = [];

  for (const layer of model.layers) {
    if (layer === inputLayer) continue;
    const inputs = layer.inboundNodes[0]?.inboundLayers.map((inbound) => inbound.name) ?? [];
    const inputResolution = resolution.get(inputs[0] ?? '');
    if (inputResolution === undefined || inputs.some((name) => resolution.get(name) !== inputResolution)) {
      throw new Error(`ESRGAN layer ${layer.name}: inputs are not computed before it, or differ in size`);
    }
    for (const name of inputs) readers.set(name, (readers.get(name) ?? 0) + 1);
    const config = layer.getConfig();
    const outChannels = Number((layer.outputShape as number[]).at(-1));
    const className = layer.getClassName();

    if (className === 'Conv2D') {
      const [kernel, bias] = layer.getWeights() as [tf.Tensor4D, tf.Tensor1D | undefined];
      const [kh, kw, inChannels] = kernel.shape;
      const ok =
        inputs.length === 1 &&
        kh === kw &&
        kh % 2 === 1 &&
        // 1x1 kernels are saved as 'valid', which for them is the same thing.
        (config.padding === 'same' || kh === 1) &&
        config.activation === 'linear' &&
        config.dataFormat === 'channelsLast' &&
        String(config.strides) === '1,1' &&
        String(config.dilationRate) === '1,1';
      if (!ok) throw new Error(`ESRGAN layer ${layer.name}: unsupported Conv2D configuration`);
      steps.push({
        kind: 'conv',
        name: layer.name,
        inputs: [inputs[0]!],
        resolution: inputResolution,
        kernel,
        bias: config.useBias && bias ? Float32Array.from(bias.dataSync()) : new Float32Array(outChannels),
        size: kh,
        costPerPixel: kh * kw * inChannels * outChannels,
      });
      resolution.set(layer.name, inputResolution);
    } else if (className === 'UpSampling2D') {
      const factor = (config.size as number[])[0] ?? 0;
      if (config.interpolation !== 'nearest' || String(config.size) !== `${factor},${factor}`) {
        throw new Error(`ESRGAN layer ${layer.name}: unsupported UpSampling2D configuration`);
      }
      const costPerPixel = ELEMENTWISE_COST * outChannels * factor * factor;
      steps.push({
        kind: 'pixelwise',
        name: layer.name,
        inputs,
        resolution: inputResolution,
        layer,
        upsample: factor,
        costPerPixel,
      });
      resolution.set(layer.name, inputResolution * factor);
    } else if (['Activation', 'Add', 'Concatenate'].includes(className)) {
      const costPerPixel = ELEMENTWISE_COST * outChannels * inputs.length;
      steps.push({
        kind: 'pixelwise',
        name: layer.name,
        inputs,
        resolution: inputResolution,
        layer,
        upsample: 1,
        costPerPixel,
      });
      resolution.set(layer.name, inputResolution);
    } else {
      throw new Error(`ESRGAN layer ${layer.name}: unsupported layer type ${className}`);
    }
  }
  if (resolution.get(outputLayer.name) !== scale) throw new Error(`ESRGAN model does not upscale by ${scale}`);
  return { input: inputLayer.name, output: outputLayer.name, steps, readers };
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

/** Runs the network on the image's RGB channels (0-255 in, 0-255 out) and returns the upscaled RGB values. */
async function upscale(network: EsrganNetwork, image: DecodedImage, ctx: ModelContext): Promise<Float32Array> {
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
