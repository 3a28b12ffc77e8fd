import { Router } from 'express';
import type { LocalFileStore } from '../../storage/file-store';
import { HttpError } from '../http-error';
import { FileParams } from '../schemas';
import { validate, validated } from '../validate';

/** Serves stored files (model outputs) at the URLs the outputs carry: unguessable ids, no key, as on fal's CDN. */
export function fileRoutes(store: LocalFileStore): Router {
  const router = Router();
  const schemas = { params: FileParams };
  router.get('/files/:fileId/:fileName', validate(schemas), async (_req, res) => {
    const { fileId, fileName } = validated(res, schemas).params;
    const file = await store.read(fileId, fileName);
    if (!file) throw HttpError.notFound('File not found');
    res.set({ 'content-type': file.contentType, 'cache-control': 'private, max-age=3600' }).send(file.data);
  });
  return router;
}
