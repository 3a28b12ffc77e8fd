import type { StoredFile } from '../storage/file-store';
import type { ModelContext } from './types';

/** Width and height of an image, read from its header. */
export interface ImageSize {
  width: number;
  height: number;
}

/**
 * Reads the pixel size of a PNG, JPEG, GIF, WebP or BMP from its first bytes, without decoding it;
 * undefined for anything else (or a truncated header).
 */
export function imageSize(data: Buffer): ImageSize | undefined {
  try {
    if (data.length >= 24 && data.readUInt32BE(0) === 0x89504e47 && data.toString('latin1', 12, 16) === 'IHDR') {
      return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
    }
    if (data.length >= 10 && /^GIF8[79]a$/.test(data.toString('latin1', 0, 6))) {
      return { width: data.readUInt16LE(6), height: data.readUInt16LE(8) };
    }
    if (data.length >= 26 && data.toString('latin1', 0, 2) === 'BM') {
      return { width: data.readInt32LE(18), height: Math.abs(data.readInt32LE(22)) };
    }
    if (data.length >= 30 && data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') {
      return webpSize(data);
    }
    if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) return jpegSize(data);
  } catch {
    // A header that claims more than the buffer holds: not an image we can size.
  }
  return undefined;
}

function webpSize(data: Buffer): ImageSize | undefined {
  const chunk = data.toString('latin1', 12, 16);
  if (chunk === 'VP8X') return { width: data.readUIntLE(24, 3) + 1, height: data.readUIntLE(27, 3) + 1 };
  if (chunk === 'VP8L' && data[20] === 0x2f) {
    const bits = data.readUInt32LE(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8 ') return { width: data.readUInt16LE(26) & 0x3fff, height: data.readUInt16LE(28) & 0x3fff };
  return undefined;
}

function jpegSize(data: Buffer): ImageSize | undefined {
  let offset = 2;
  while (offset + 9 < data.length) {
    if (data[offset] !== 0xff) return undefined;
    const marker = data[offset + 1]!;
    // Fill bytes, and markers that stand alone (no length field).
    if (marker === 0xff) {
      offset += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    // Start-of-frame markers (baseline, progressive, ...); C4, C8 and CC are not frames.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: data.readUInt16BE(offset + 5), width: data.readUInt16BE(offset + 7) };
    }
    offset += 2 + data.readUInt16BE(offset + 2);
  }
  return undefined;
}

/** Stores one output file and describes it as fal does, with `width`/`height` when it is an image. */
export async function saveOutputFile(
  ctx: Pick<ModelContext, 'saveFile'>,
  file: { data: Buffer; contentType: string; fileName: string },
): Promise<StoredFile> {
  const stored = await ctx.saveFile(file);
  const size = file.contentType.startsWith('image/') ? imageSize(file.data) : undefined;
  return size ? { ...stored, ...size } : stored;
}

/** Decodes a `data:` URI (base64 or percent-encoded), or returns undefined when `text` is not one. */
export function decodeDataUri(text: string): { data: Buffer; contentType: string } | undefined {
  const match = /^data:([^,]*?)(;base64)?,/i.exec(text);
  if (!match) return undefined;
  const body = text.slice(match[0].length);
  const contentType = match[1]?.split(';')[0]?.trim().toLowerCase() || 'text/plain';
  if (match[2]) return { data: Buffer.from(body, 'base64'), contentType };
  try {
    return { data: Buffer.from(decodeURIComponent(body), 'utf8'), contentType };
  } catch {
    return undefined;
  }
}

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'image/bmp': 'bmp',
  'image/svg+xml': 'svg',
  'video/mp4': 'mp4',
  'video/webm': 'webm',
  'audio/mpeg': 'mp3',
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/ogg': 'ogg',
  'application/json': 'json',
  'application/zip': 'zip',
  'application/pdf': 'pdf',
  'text/plain': 'txt',
};

/** A file name for an output that came without one: `<base>.<extension of its content type>`. */
export function outputFileName(base: string, contentType: string): string {
  const ext = EXTENSIONS[contentType] ?? contentType.split('/')[1]?.replace(/[^a-z0-9]+/gi, '') ?? 'bin';
  return `${base}.${ext || 'bin'}`;
}
