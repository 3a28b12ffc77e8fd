import { z } from 'zod';
import { InputValidationError } from '../../src/errors';
import { parseInput } from '../../src/models/input-validation';

describe('validation errors in the FastAPI/pydantic shape fal clients parse', () => {
  const Schema = z.object({
    model_name: z.string(),
    steps: z.number().int().positive().optional(),
    tags: z.array(z.string()).optional(),
  });

  const detailOf = (input: unknown) => {
    try {
      parseInput(Schema, input);
    } catch (err) {
      expect(err).toBeInstanceOf(InputValidationError);
      return (err as InputValidationError).detail;
    }
    throw new Error('expected a validation error');
  };

  it('reports a missing field as value_error.missing / field required', () => {
    expect(detailOf({})).toEqual([{ loc: ['body', 'model_name'], msg: 'field required', type: 'value_error.missing' }]);
  });

  it("reports a wrong type with pydantic's type names", () => {
    expect(detailOf({ model_name: 3, steps: 'many', tags: 'x' })).toEqual([
      { loc: ['body', 'model_name'], msg: 'str type expected', type: 'type_error.str' },
      { loc: ['body', 'steps'], msg: 'value is not a valid float', type: 'type_error.float' },
      { loc: ['body', 'tags'], msg: 'value is not a valid list', type: 'type_error.list' },
    ]);
  });

  it('reports other constraint failures as value_error, and nested fields with their full loc', () => {
    expect(detailOf({ model_name: 'm', steps: -1, tags: ['a', 2] })).toEqual([
      { loc: ['body', 'steps'], msg: expect.any(String), type: 'value_error' },
      { loc: ['body', 'tags', 1], msg: 'str type expected', type: 'type_error.str' },
    ]);
  });

  it('calls a non-integer where an integer is expected type_error.integer', () => {
    expect(detailOf({ model_name: 'm', steps: 1.5 })).toEqual([
      { loc: ['body', 'steps'], msg: 'value is not a valid integer', type: 'type_error.integer' },
    ]);
  });

  it('returns the parsed value when the input fits', () => {
    expect(parseInput(Schema, { model_name: 'm', steps: 3 })).toEqual({ model_name: 'm', steps: 3 });
  });
});
