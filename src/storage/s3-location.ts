/**
 * Which bucket an S3 store uses and how it reaches it. One type for the parsed configuration (`StorageConfig`) and
 * the store's options (`S3StoreOptions`), so a new setting is declared once. Types only: the config imports it
 * without loading the AWS SDK.
 */
export interface S3Location {
  bucket: string;
  /** Key prefix, without leading or trailing slash; '' = the bucket's root. */
  prefix: string;
  /** Endpoint the services use (SeaweedFS, MinIO, R2, ...); undefined = AWS S3 of `region`. */
  endpoint?: string;
  /**
   * Endpoint written into the presigned URLs handed to clients, when they reach the store under another name than
   * the services do (e.g. `http://localhost:8333` outside docker compose, `http://seaweedfs:8333` inside).
   * @default endpoint
   */
  publicEndpoint?: string;
  /**
   * Base of plain (unsigned) file URLs, for a bucket that is publicly readable or behind a CDN: output URLs are then
   * `<publicBaseUrl>/<key>` and never expire by themselves. Undefined = presigned GET URLs.
   */
  publicBaseUrl?: string;
  /** Path-style URLs (`endpoint/bucket/key`); most S3-compatible stores need them. */
  forcePathStyle: boolean;
  region: string;
  /** Explicit keys; undefined = the SDK's default chain (environment, profile, instance role, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}
