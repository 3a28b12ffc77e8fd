import type { z } from 'zod';
import { InputValidationError } from '../errors';
import type { ValidationDetail } from '../domain/request';

/**
 * Maps zod issues to the FastAPI/pydantic-v1 entries fal's clients parse:
 * missing field -> `value_error.missing`, wrong type -> `type_error.<type>`, anything else -> `value_error`.
 * `input` is what was validated; it tells a missing field from one of the wrong type.
 */
export function zodIssuesToDetail(error: z.ZodError, input: unknown, root: string = 'body'): ValidationDetail[] {
  return error.issues.map((issue) => {
    const loc = [root, ...issue.path.map((p) => (typeof p === 'number' ? p : String(p)))];
    if (issue.code === 'invalid_type') {
      if (valueAt(input, issue.path) === undefined) {
        return { loc, msg: 'field required', type: 'value_error.missing' };
      }
      const expected = issue.expected as string;
      return { loc, msg: `value is not a valid ${expected}`, type: `type_error.${expected}` };
    }
    return { loc, msg: issue.message, type: 'value_error' };
  });
}

/** Parses `input` with `schema`, throwing {@link InputValidationError} in fal's shape when it does not fit. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new InputValidationError(zodIssuesToDetail(result.error, input));
  return result.data;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}
