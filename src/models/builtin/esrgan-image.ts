import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { InputValidationError } from '../../errors';
import { imageSize } from '../image-size';
import type { FetchedInput, ModelContext } from '../types';

// The ESRGAN model's image handling: fetching and decoding its input (PNG or JPEG, size-checked before the bitmap
// is allocated) and encoding its output PNG. Nothing here knows about the network.

/** A decoded input image. */
export interface DecodedImage {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel, row-major. */
  rgba: Uint8Array;
  /** Whether any pixel is not fully opaque; only then does the output keep an alpha channel. */
  alpha: boolean;
}

/** Fetches `image_url`; a fetch failure is the caller's mistake (422 on `image_url`), not the model's. */
export async function fetchImage(url: string, ctx: ModelContext): Promise<FetchedInput> {
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

/** Decodes a PNG or JPEG into RGBA, refusing (422) anything over `maxPixels` before allocating its bitmap. */
export function decodeImage(file: FetchedInput, maxPixels: number): DecodedImage {
  const format = sniffFormat(file.data);
  if (!format) throw imageUrlError('unsupported image format: expected PNG or JPEG');

  // The header's size is checked before decoding, so a small file cannot expand into a huge bitmap.
  const size = imageSize(file.data);
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

/** The input's alpha channel at the output's size, nearest-neighbour: the network upscales RGB only. */
export function upscaleAlpha(image: DecodedImage, scale: number): Uint8Array {
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
export function encodePng(
  rgb: Float32Array,
  width: number,
  height: number,
  alpha: Uint8Array | false,
): Promise<Buffer> {
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
