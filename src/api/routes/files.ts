import { Router } from 'express';
import type { FileStore } from '../../storage/file-store';
import { HttpError } from '../http-error';
import { FileParams } from '../schemas';
import { validate, validated } from '../validate';

/** Serves stored files (model outputs) at the URLs the outputs carry: unguessable ids, no key, as on fal's CDN. */
export function fileRoutes(store: FileStore): Router {
  const router = Router();
  const schemas = { params: FileParams };
  router.get('/files/:fileId/:fileName', validate(schemas), async (_req, res) => {
    const { fileId, fileName } = validated(res, schemas).params;
    const file = await store.read(fileId, fileName);
    if (!file) throw HttpError.notFound('File not found');
    // A cache must not keep serving a file past its expiry.
    const lifeLeft = file.expiresAt ? Math.floor((file.expiresAt.getTime() - Date.now()) / 1000) : 3600;
    const maxAge = Math.max(0, Math.min(3600, lifeLeft));
    // setHeader, not set: Express would append a charset to text types, which the bytes may not be in.
    res.setHeader('content-type', file.contentType);
    res.set('cache-control', `private, max-age=${maxAge}`).send(file.data);
  });
  return router;
}
