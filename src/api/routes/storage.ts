import { z } from 'zod';
import { UploadRejectedError, type FileStore } from '../../storage/file-store';
import { HttpError } from '../http-error';
import { StoredFile, UploadInitiated } from '../response-schemas';
import { commonErrors, errorDoc } from '../route-docs';
import { routesWith } from '../route';
import { UploadHeaders, UploadInitiateBody, UploadParams, UploadQuery } from '../schemas';
import { baseUrlOf } from '../status-body';

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

const route = routesWith<StorageRouteDeps>();

/**
 * fal's storage API as `@fal-ai/client` uses it for `Blob`/`File` inputs (behind the API key):
 * `POST /storage/upload/initiate` answers `{upload_url, file_url}`; the client then PUTs the bytes to
 * `upload_url` (see {@link uploadRoutes}) and passes `file_url` to the model.
 */
export const storageRoutes = [
  route({
    method: 'post',
    route: '/storage/upload/initiate',
    summary: 'Reserve an upload: answers the URL to PUT the bytes to and the URL the file will have',
    tags: ['files'],
    auth: true,
    request: { headers: UploadHeaders, body: { schema: UploadInitiateBody } },
    responses: {
      200: { description: 'Reserved', schema: UploadInitiated },
      ...commonErrors(400, 401, 413, 415, 422),
    },
    async handle({ deps, req, res, headers, body }) {
      const base = baseUrlOf(req, deps.publicBaseUrl);
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
    },
  }),
  route({
    method: 'post',
    route: '/storage/upload/initiate-multipart',
    summary: 'Multipart uploads are not offered: always 413',
    tags: ['files'],
    auth: true,
    responses: commonErrors(401, 413),
    // The client switches to multipart above 90 MB; a file that size is beyond what any model here may fetch.
    handle({ deps }) {
      throw new HttpError(413, { detail: `Uploads are limited to ${deps.maxUploadBytes} bytes (INPUT_MAX_BYTES)` });
    },
  }),
];

/**
 * The PUT of an upload. Like a presigned URL it needs no API key: the `token` in the URL is the
 * capability, and it works once. The bytes stream to the store; no body parser reads them.
 */
export const uploadRoutes = [
  route({
    method: 'put',
    route: '/storage/upload/:fileId',
    summary: 'Upload the bytes of a reserved file (the `token` is the capability; no key)',
    tags: ['files'],
    auth: false,
    request: {
      params: UploadParams,
      query: UploadQuery,
      body: {
        schema: z.string().meta({ format: 'binary' }),
        contentType: 'application/octet-stream',
        readBy: 'handler',
      },
    },
    responses: {
      200: { description: 'Stored', schema: StoredFile },
      409: errorDoc('Already uploaded'),
      ...commonErrors(404, 413, 422),
    },
    async handle({ deps, req, res, params, query }) {
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
    },
  }),
];
