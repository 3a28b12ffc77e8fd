import { Router, type Request } from 'express';
import { UploadRejectedError, type FileStore } from '../../storage/file-store';
import { HttpError } from '../http-error';
import { UploadHeaders, UploadInitiateBody, UploadParams, UploadQuery } from '../schemas';
import { validate, validated } from '../validate';

export interface StorageRouteDeps {
  fileStore: FileStore;
  /** Largest upload accepted; no model could fetch a larger input anyway (`INPUT_MAX_BYTES`). */
  maxUploadBytes: number;
  /** Base URL for the URLs we hand out; undefined = how this request reached us. */
  publicBaseUrl?: string;
}

const UPLOAD_STATUS: Record<UploadRejectedError['reason'], number> = {
  not_found: 404,
  too_large: 413,
  already_uploaded: 409,
};

/**
 * fal's storage API as `@fal-ai/client` uses it for `Blob`/`File` inputs (behind the API key):
 * `POST /storage/upload/initiate` answers `{upload_url, file_url}`; the client then PUTs the bytes to
 * `upload_url` (see {@link uploadRoutes}) and passes `file_url` to the model.
 */
export function storageRoutes(deps: StorageRouteDeps): Router {
  const router = Router();
  const baseOf = (req: Request) => deps.publicBaseUrl ?? `${req.protocol}://${req.get('host')}`;

  const schemas = { headers: UploadHeaders, body: UploadInitiateBody };
  router.post('/storage/upload/initiate', validate(schemas), async (req, res) => {
    const { headers, body } = validated(res, schemas);
    const base = baseOf(req);
    const lifecycle = headers['x-fal-object-lifecycle'];
    const reservation = await deps.fileStore.reserveUpload(
      { contentType: body.content_type, fileName: body.file_name },
      { expiresInSeconds: lifecycle?.expiration_duration_seconds },
      base,
    );
    const token = encodeURIComponent(reservation.token);
    res.json({
      // With an object store the bytes go straight to it (a presigned PUT), never through the API.
      upload_url: reservation.uploadUrl ?? `${base}/storage/upload/${reservation.fileId}?token=${token}`,
      file_url: reservation.fileUrl,
    });
  });

  // The client switches to multipart above 90 MB; a file that size is beyond what any model here may fetch.
  router.post('/storage/upload/initiate-multipart', () => {
    throw new HttpError(413, { detail: `Uploads are limited to ${deps.maxUploadBytes} bytes (INPUT_MAX_BYTES)` });
  });
  return router;
}

/**
 * The PUT of an upload. Like a presigned URL it needs no API key: the `token` in the URL is the
 * capability, and it works once. Mounted before the JSON body parser so the bytes stream to disk.
 */
export function uploadRoutes(deps: StorageRouteDeps): Router {
  const router = Router();
  const schemas = { params: UploadParams, query: UploadQuery };
  router.put('/storage/upload/:fileId', validate(schemas), async (req, res) => {
    const { params, query } = validated(res, schemas);
    const declared = Number(req.get('content-length') ?? NaN);
    if (declared > deps.maxUploadBytes) {
      throw new HttpError(413, { detail: `The upload is larger than the ${deps.maxUploadBytes} bytes allowed` });
    }
    try {
      const file = await deps.fileStore.completeUpload(params.fileId, query.token, req, deps.maxUploadBytes);
      res.json(file);
    } catch (err) {
      if (err instanceof UploadRejectedError) throw new HttpError(UPLOAD_STATUS[err.reason], { detail: err.message });
      // The client went away mid-upload: its doing, and nothing was stored.
      if (req.destroyed) throw new HttpError(400, { detail: 'The upload was interrupted' });
      throw err;
    }
  });
  return router;
}
