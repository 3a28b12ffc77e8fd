/** An error the API answers with as-is: a status and a fal-shaped JSON body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body.detail === 'string' ? body.detail : `HTTP ${status}`);
    this.name = 'HttpError';
  }

  static notFound(detail: string, extra: Record<string, unknown> = {}): HttpError {
    return new HttpError(404, { detail, ...extra });
  }
}
