import { webhookBodyFor, type WebhookBody } from '../../src/workflows/shared/request';
import { DEFAULT_MAX_PAYLOAD_BYTES, fitWebhookBody, utf8Length } from '../../src/workflows/webhook-delivery/payload';

/** What a webhook body carries when the output is too big or cannot be sent as JSON. */
describe('webhook payload limit', () => {
  const ok = (payload: unknown): WebhookBody => ({
    request_id: 'r1',
    gateway_request_id: 'r1',
    status: 'OK',
    payload,
    error: null,
  });

  it('leaves a body whose payload fits exactly as it is, up to the last byte', () => {
    const payload = { text: 'x'.repeat(100) };
    const size = JSON.stringify(payload).length;

    expect(fitWebhookBody(ok(payload), size)).toEqual(ok(payload));
    expect(fitWebhookBody(ok(payload), size - 1)).toEqual({
      ...ok(null),
      payload_error: `The payload is ${size} bytes of JSON, more than the ${size - 1} bytes a webhook carries; fetch the result from the request's response_url`,
    });
  });

  it('counts bytes, not characters', () => {
    const payload = { text: '€'.repeat(10) }; // 3 bytes each in UTF-8
    const bytes = Buffer.byteLength(JSON.stringify(payload));

    expect(fitWebhookBody(ok(payload), bytes).payload).toEqual(payload);
    expect(fitWebhookBody(ok(payload), bytes - 1).payload).toBeNull();
  });

  it('keeps the ERROR body of the seed unchanged', () => {
    const body = webhookBodyFor('r1', {
      status: 'ERROR',
      httpStatus: 422,
      errorType: 'validation_error',
      message: 'Invalid input',
      detail: [{ loc: ['body', 'model_name'], msg: 'field required', type: 'value_error.missing' }],
      logs: [],
      metrics: { inference_time: null },
    });

    expect(fitWebhookBody(body, DEFAULT_MAX_PAYLOAD_BYTES)).toEqual({
      request_id: 'r1',
      gateway_request_id: 'r1',
      status: 'ERROR',
      payload: { detail: [{ loc: ['body', 'model_name'], msg: 'field required', type: 'value_error.missing' }] },
      error: 'Invalid status code: 422',
    });
  });

  it.each([
    ['undefined', undefined, /no JSON representation/],
    ['a BigInt', { seed: BigInt(1) }, /could not be serialised to JSON/],
    [
      'a cycle',
      (() => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      })(),
      /could not be serialised to JSON/,
    ],
  ])('sends payload null with payload_error for an output that is %s', (_what, payload, why) => {
    const fitted = fitWebhookBody(ok(payload), DEFAULT_MAX_PAYLOAD_BYTES);

    expect(fitted.payload).toBeNull();
    expect(fitted.payload_error).toMatch(why);
    expect(JSON.parse(JSON.stringify(fitted))).toMatchObject({ status: 'OK', payload: null, error: null });
  });

  it.each(['', 'ascii', 'é', '€', '😀 emoji', '\u{10FFFF}', 'a\uD800b'])(
    'measures %j as Buffer.byteLength does',
    (text) => {
      expect(utf8Length(text)).toBe(Buffer.byteLength(text));
    },
  );
});
