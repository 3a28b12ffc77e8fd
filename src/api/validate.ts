import type { RequestHandler } from 'express';
import type { z } from 'zod';
import { zodIssuesToDetail } from '../models/input-validation';
import { HttpError } from './http-error';

/** Schemas for the parts of a request a route reads. */
export interface RequestSchemas {
  params?: z.ZodType;
  query?: z.ZodType;
  headers?: z.ZodType;
  body?: z.ZodType;
}

type Part = keyof RequestSchemas;

const PARTS: Part[] = ['params', 'query', 'headers', 'body'];

/**
 * Parses the request's parts with zod. A mismatch is a 422 in fal's pydantic shape, with `loc`
 * naming the part (`["query", "fal_webhook"]`), so clients see exactly which field was wrong.
 */
export function validate<S extends RequestSchemas>(schemas: S): RequestHandler {
  return (req, res, next) => {
    const parsed: Record<string, unknown> = {};
    const detail = [];
    for (const part of PARTS) {
      const schema = schemas[part];
      if (!schema) continue;
      const value: unknown = req[part];
      const result = schema.safeParse(value);
      if (result.success) parsed[part] = result.data;
      else detail.push(...zodIssuesToDetail(result.error, value, part === 'params' ? 'path' : part));
    }
    if (detail.length > 0) throw new HttpError(422, { detail });
    // Read by the route table's handler wrapper (`mountRoutes`).
    res.locals.valid = parsed;
    next();
  };
}
