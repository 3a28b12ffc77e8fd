/**
 * Zod pieces for reading environment variables: each turns the raw string into the value the config holds, and
 * says in its issue message what a valid value looks like.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { parseRate } from '../api/rate-limit';

/** A TCP port; 0 asks the OS for a free one. */
export const port = z.coerce.number().int().min(0).max(65535);

/** A whole number above 0 (counts, sizes, timeouts). */
export const positiveInt = z.coerce.number().int().positive();
export const nonNegativeInt = z.coerce.number().int().nonnegative();

/** A string where empty or blank means unset, so `VAR=` in an env file behaves like leaving it out. */
export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/** A comma-separated list; blank entries are dropped. */
export const commaList = z
  .string()
  .default('')
  .transform((raw) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** The spellings a boolean variable accepts. */
export const FLAG_VALUES = ['true', 'false', '1', '0'] as const;

/** A boolean variable (`true`/`1` or `false`/`0`) with its default. */
export function flag(fallback: 'true' | 'false') {
  return z
    .enum(FLAG_VALUES)
    .default(fallback)
    .transform((v) => v === 'true' || v === '1');
}

/**
 * A string read by a parser that throws on bad input (`parseEgressAllow`, `parseEncryptionKeys`): its message
 * becomes the variable's issue, so every bad variable is reported together instead of the first throw winning.
 */
export function parsedWith<T>(parse: (raw: string) => T) {
  return z
    .string()
    .default('')
    .transform((raw, ctx) => {
      try {
        return parse(raw);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });
}

/** `key_id:key_secret[:owner]` entries, comma separated; the owner defaults to the key id. */
export const ApiKeys = z
  .string()
  .transform((raw, ctx) => {
    const keys = raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry) => {
        const [id, secret, owner] = entry.split(':');
        if (!id || !secret) {
          ctx.addIssue({ code: 'custom', message: `"${id ?? ''}:…" is not key_id:key_secret[:owner]` });
          return undefined;
        }
        return { id, secret, owner: owner || id };
      });
    return keys.filter((k) => k !== undefined);
  })
  .refine((keys) => keys.length > 0, 'at least one key_id:key_secret is required');

/** Durations like `0s`, `5s`, `5m`, `2h`, `1d`, or plain milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1;
  return Math.round(Number(m[1]) * factor);
}

/** A comma-separated list of durations (the webhook retry schedule), in milliseconds. */
export const Schedule = z.string().transform((raw, ctx) => {
  const delays = raw.split(',').map((part) => parseDuration(part));
  if (delays.length === 0 || delays.some((d) => d === undefined)) {
    ctx.addIssue({ code: 'custom', message: `"${raw}" is not a comma-separated list of durations like 0s,5s,5m,2h` });
    return z.NEVER;
  }
  return delays as number[];
});

/** `N/duration`, e.g. `10/10m`: at most N at once, N more over each duration. */
export const RateSpec = z.string().transform((raw, ctx) => {
  const rate = parseRate(raw, parseDuration);
  if (!rate) {
    ctx.addIssue({ code: 'custom', message: `"${raw}" is not a rate like 10/10m (N per duration)` });
    return z.NEVER;
  }
  return rate;
});

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Express's `trust proxy`: unset/`false`, `true` (any proxy), a hop count, or a comma-separated list
 * of addresses, CIDR ranges and the names `loopback`, `linklocal`, `uniquelocal`.
 */
export const TrustProxy = z
  .string()
  .default('false')
  .transform((raw, ctx): boolean | number | string => {
    const value = raw.trim();
    if (value === '' || value === 'false') return false;
    if (value === 'true') return true;
    if (/^\d+$/.test(value)) return Number(value);
    const bad = value
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => !PROXY_NAMES.has(entry) && !ipaddr.isValid(entry) && !ipaddr.isValidCIDR(entry));
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `not an address, CIDR range or loopback/linklocal/uniquelocal: ${bad}` });
      return z.NEVER;
    }
    return value;
  });
