import { parseJson, stringifyJson, toPlainNumbers } from '../../src/codec/json';
import { payloadConverter } from '../../src/codec/payload-converter';

const EXACT = [
  '196619188014358661',
  '-9223372036854775807',
  '-0',
  '0.1000000000000000000001',
  '1e400',
  '123456789012345678901234567890',
];

describe('lossless JSON', () => {
  it.each(EXACT)('writes %s back exactly as it was read', (number) => {
    const text = `{"value":${number},"list":[${number},1.5],"nested":{"n":${number}}}`;
    expect(stringifyJson(parseJson(text))).toBe(text);
  });

  it('gives plain numbers for every value a double holds, so readers compute as with JSON.parse', () => {
    const value = parseJson('{"a":2.0,"b":1e2,"c":0.1,"d":9007199254740991,"e":"196619188014358661"}');
    expect(value).toEqual({ a: 2, b: 100, c: 0.1, d: 9007199254740991, e: '196619188014358661' });
  });

  it('throws the native SyntaxError for malformed text, with or without big numbers', () => {
    expect(() => parseJson('{"a":')).toThrow(SyntaxError);
    expect(() => parseJson('{"a":196619188014358661,')).toThrow(SyntaxError);
  });

  it('keeps a string that looks like its own marker a string', () => {
    const text = '{"s":"\\u0000lossless-number:5","n":196619188014358661}';
    expect(stringifyJson(parseJson(text))).toBe(text);
  });

  it('writes exactly what JSON.stringify writes when no number needed its text', () => {
    const value = { s: 'é\u2028"\\', n: [1, 2.5, -3], o: { nested: null, t: true } };
    expect(stringifyJson(value)).toBe(JSON.stringify(value));
  });

  it('plain JSON.stringify writes a kept number as its nearest double, as the default Temporal converter would', () => {
    expect(JSON.stringify(parseJson('{"seed":196619188014358661,"z":-0}'))).toBe('{"seed":196619188014358660,"z":0}');
  });

  it('turns kept numbers into their nearest doubles for code that computes', () => {
    const value = parseJson('{"seed":196619188014358661,"scale":2}');
    expect(toPlainNumbers(value)).toEqual({ seed: 196619188014358660, scale: 2 });
    const plain = { scale: 2 };
    expect(toPlainNumbers(plain)).toBe(plain);
  });

  it('the payload converter carries exact numbers through a Temporal payload as ordinary json/plain', () => {
    const value = parseJson('{"seed":196619188014358661,"neg":-1234567890123456789,"z":-0}');
    const payload = payloadConverter.toPayload(value);
    expect(Buffer.from(payload.metadata!.encoding!).toString()).toBe('json/plain');
    expect(Buffer.from(payload.data!).toString()).toBe('{"seed":196619188014358661,"neg":-1234567890123456789,"z":-0}');
    expect(stringifyJson(payloadConverter.fromPayload(payload))).toBe(Buffer.from(payload.data!).toString());
  });

  it('parses a 20 MiB data URI with a big integer beside it quickly (the native parser does the work)', () => {
    const text = `{"image_url":"data:image/png;base64,${'QUJD'.repeat(5 * 1024 * 1024)}","seed":196619188014358661}`;
    const started = performance.now();
    const value = parseJson(text);
    // lossless-json's own parser takes about 20 s here; the bound is generous for a loaded machine.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(stringifyJson(value)).toBe(text);
  });
});
