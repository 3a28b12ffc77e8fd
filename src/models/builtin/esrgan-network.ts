import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

// The ESRGAN network: its weights loaded once per process and scale, and its Keras graph turned into a list of
// layers that can be run tile by tile (see esrgan-tiling.ts, which runs them).

/** Elementwise work (ReLU, add, concat, upsampling) is far cheaper per value than a MAC in a convolution. */
const ELEMENTWISE_COST = 4;

/** One layer, run tile by tile. `resolution` is its input's size relative to the image (after upsampling). */
export type Step =
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

/** The network as a list of tileable steps, in an order where every step's inputs are computed before it. */
export interface EsrganNetwork {
  input: string;
  output: string;
  steps: Step[];
  /** How many steps read each layer's output, so it is dropped after its last reader. */
  readers: Map<string, number>;
}

// Loaded once per process and scale; a failed load is forgotten so the next request tries again.
const networks = new Map<number, Promise<EsrganNetwork>>();

/** The network for `scale` (2, 3 or 4), loaded on first use and shared by every later run in this process. */
export function loadEsrgan(scale: number): Promise<EsrganNetwork> {
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
    } else if (className === 'UpSampling2D' || ['Activation', 'Add', 'Concatenate'].includes(className)) {
      // Pixelwise layers: each output pixel reads one pixel per input. Upsampling has one input and writes it
      // factor² times; the others read each of their inputs once.
      let upsample = 1;
      if (className === 'UpSampling2D') {
        upsample = (config.size as number[])[0] ?? 0;
        if (config.interpolation !== 'nearest' || String(config.size) !== `${upsample},${upsample}`) {
          throw new Error(`ESRGAN layer ${layer.name}: unsupported UpSampling2D configuration`);
        }
      }
      const fanIn = className === 'UpSampling2D' ? upsample * upsample : inputs.length;
      steps.push({
        kind: 'pixelwise',
        name: layer.name,
        inputs,
        resolution: inputResolution,
        layer,
        upsample,
        costPerPixel: ELEMENTWISE_COST * outChannels * fanIn,
      });
      resolution.set(layer.name, inputResolution * upsample);
    } else {
      throw new Error(`ESRGAN layer ${layer.name}: unsupported layer type ${className}`);
    }
  }
  if (resolution.get(outputLayer.name) !== scale) throw new Error(`ESRGAN model does not upscale by ${scale}`);
  return { input: inputLayer.name, output: outputLayer.name, steps, readers };
}
