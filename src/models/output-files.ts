import type { StoredFile } from '../storage/file-store';
import { imageSize } from './image-size';
import type { ModelContext } from './types';

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
