import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { ApiKey } from '../config';
import { HttpError } from './http-error';

const SCHEME = /^Key\s+([^:\s]+):(\S+)$/i;

/**
 * fal's `Authorization: Key <key_id>:<key_secret>`. The key's owner is left in `res.locals.owner`;
 * every request is scoped to it.
 */
export function requireKey(keys: readonly ApiKey[]): RequestHandler {
  const byId = new Map(keys.map((k) => [k.id, k]));
  return (req, res, next) => {
    const header = req.get('authorization');
    const match = header ? SCHEME.exec(header.trim()) : null;
    if (!match) {
      throw new HttpError(401, {
        detail: "Missing or malformed Authorization header: expected 'Key <key_id>:<key_secret>'",
      });
    }
    const key = byId.get(match[1]!);
    if (!key || !sameSecret(key.secret, match[2]!)) throw new HttpError(401, { detail: 'Invalid API key' });
    res.locals.owner = key.owner;
    next();
  };
}

/** The owner {@link requireKey} authenticated. */
export function ownerOf(res: Response): string {
  return res.locals.owner as string;
}

function sameSecret(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
