/**
 * Fitting a webhook body to what we are willing to send. Loaded by the workflow bundle: no Node imports.
 */
import type { WebhookBody } from '../shared/request';

/** @default 1 MiB: the largest `payload` (as JSON) a webhook carries. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * Bodies up to this size travel with each attempt through workflow history; larger ones are read by
 * the attempt from the delivery workflow's own input, so ten retries do not store ten copies.
 */
export const INLINE_BODY_MAX_BYTES = 16 * 1024;

/** Bytes of `text` in UTF-8, without TextEncoder (not every sandbox has it). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * The body as it will be sent: unchanged when its payload serialises to JSON within `maxPayloadBytes`,
 * otherwise with `"payload": null` and a `payload_error` saying why (the result itself stays
 * fetchable at the request's `response_url`).
 */
export function fitWebhookBody(body: WebhookBody, maxPayloadBytes: number): WebhookBody {
  let json: string | undefined;
  try {
    json = JSON.stringify(body.payload);
  } catch (err) {
    return withoutPayload(body, `The payload could not be serialised to JSON (${(err as Error).message})`);
  }
  if (json === undefined) return withoutPayload(body, 'The payload has no JSON representation');
  const size = utf8Length(json);
  if (size > maxPayloadBytes) {
    return withoutPayload(
      body,
      `The payload is ${size} bytes of JSON, more than the ${maxPayloadBytes} bytes a webhook carries; fetch the result from the request's response_url`,
    );
  }
  return body;
}

function withoutPayload(body: WebhookBody, why: string): WebhookBody {
  return { ...body, payload: null, payload_error: why };
}
