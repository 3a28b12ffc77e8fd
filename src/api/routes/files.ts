import type { Response } from 'express';
import { z } from 'zod';
import type { FileStore } from '../../storage/file-store';
import { HttpError } from '../http-error';
import { commonErrors } from '../route-docs';
import { routesWith } from '../route';
import { FileParams, MIME_TYPE } from '../schemas';

export interface FileRouteDeps {
  fileStore: FileStore;
}

/**
 * Types a browser may show inline: images, audio and video it decodes itself, none of which can run
 * script. SVG is an image that can, and is therefore not here; nor is anything text-like.
 */
const INLINE_TYPES = new Set([
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
  'image/bmp',
  'audio/mpeg',
  'audio/wav',
  'audio/x-wav',
  'audio/ogg',
  'audio/webm',
  'audio/flac',
  'audio/aac',
  'audio/mp4',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
]);

/**
 * Even a document that got through is sandboxed (no script, no same-origin access, no forms) and
 * loads nothing but the media it is.
 */
const FILE_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/**
 * The headers that keep user content from running on the API's origin: never sniffed, sandboxed, and
 * downloaded rather than shown unless it is a plain image, audio or video type. A stored type that is
 * not a valid MIME type at all (files stored before uploads were checked) is served as bytes.
 */
export function setFileHeaders(res: Response, storedType: string): void {
  const contentType = MIME_TYPE.test(storedType) ? storedType : 'application/octet-stream';
  const essence = contentType.split(';')[0]!.trim().toLowerCase();
  // setHeader, not set: Express would append a charset to text types, which the bytes may not be in.
  res.setHeader('content-type', contentType);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('content-security-policy', FILE_CSP);
  res.setHeader('content-disposition', INLINE_TYPES.has(essence) ? 'inline' : 'attachment');
}

const route = routesWith<FileRouteDeps>();

/** Serves stored files (model outputs) at the URLs the outputs carry: unguessable ids, no key, as on fal's CDN. */
export const fileRoutes = [
  route({
    method: 'get',
    route: '/files/:fileId/:fileName',
    summary: 'A stored file (model output or upload)',
    description:
      'Served with `X-Content-Type-Options: nosniff` and a sandboxing `Content-Security-Policy`; as an attachment unless it is an image, audio or video type a browser shows safely (never HTML, SVG, XML or script).',
    tags: ['files'],
    auth: false,
    request: { params: FileParams },
    responses: {
      200: { description: 'The file', schema: z.string().meta({ format: 'binary' }), contentType: '*/*' },
      ...commonErrors(404),
    },
    async handle({ deps, params, res }) {
      const file = await deps.fileStore.read(params.fileId, params.fileName);
      if (!file) throw HttpError.notFound('File not found');
      // A cache must not keep serving a file past its expiry.
      const lifeLeft = file.expiresAt ? Math.floor((file.expiresAt.getTime() - Date.now()) / 1000) : 3600;
      const maxAge = Math.max(0, Math.min(3600, lifeLeft));
      setFileHeaders(res, file.contentType);
      res.set('cache-control', `private, max-age=${maxAge}`).send(file.data);
    },
  }),
];
