import { z } from 'zod';
import { InputValidationError } from '../errors';
import type { ValidationDetail } from '../workflows/shared/request';

/** A backend's 422 `detail`: FastAPI/pydantic entries, as HTTP and Cog model servers send them. */
export const PydanticDetail = z.array(
  z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() }),
);

/** zod's type names as pydantic v1 spells them in `type_error.*`, with its message. */
const PYDANTIC_TYPES: Record<string, [string, string]> = {
  string: ['str', 'str type expected'],
  number: ['float', 'value is not a valid float'],
  int: ['integer', 'value is not a valid integer'],
  boolean: ['bool', 'value could not be parsed to a boolean'],
  object: ['dict', 'value is not a valid dict'],
  record: ['dict', 'value is not a valid dict'],
  array: ['list', 'value is not a valid list'],
};

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
      const [type, msg] = PYDANTIC_TYPES[issue.expected as string] ?? [issue.expected as string, issue.message];
      return { loc, msg, type: `type_error.${type}` };
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
