/**
 * Documentation pieces several routes share: the error answers any route may give, the path
 * parameters with examples, the submit's request, the finished request's answers, and the links
 * from a submit's answer to the routes its request id opens.
 */
import { z } from 'zod';
import { operationIdOf, type ResponseDoc } from './openapi';
import { ErrorBody, ModelOutput, ResultErrorBody, ValidationErrorBody } from './response-schemas';
import { RequestParams, StatusQuery, SubmitBody, SubmitHeaders, SubmitParams, SubmitQuery } from './schemas';

/** An error answer with fal's `{detail}` body. */
export const errorDoc = (description: string): ResponseDoc => ({ description, schema: ErrorBody });

/** The answers any route may give for the reason named. */
const E = {
  400: errorDoc('Malformed request (e.g. a JSON body that does not parse)'),
  401: errorDoc('Missing or invalid `Authorization: Key <key_id>:<key_secret>`'),
  404: errorDoc('No such model, request or route (another owner\'s request is "not found" too)'),
  413: errorDoc('Body larger than allowed'),
  415: errorDoc('Content type other than JSON'),
  422: { description: "Invalid fields, in pydantic's shape", schema: ValidationErrorBody } satisfies ResponseDoc,
  429: errorDoc("The model's queue is full (`fal_max_queue_length` or the model's bound)"),
  503: errorDoc('Temporal is unreachable; try again shortly'),
};

/** The common answers for these status codes. */
export const commonErrors = (...codes: (keyof typeof E)[]): Record<number, ResponseDoc> =>
  Object.fromEntries(codes.map((c) => [c, E[c]]));

// The same schemas, with examples (the docs page pre-fills them; schemathesis tries them first).
/** {@link SubmitParams} with examples. */
export const ModelIdParams = SubmitParams.extend({
  owner: SubmitParams.shape.owner.meta({ example: 'fal-ai' }),
  app: SubmitParams.shape.app.meta({ example: 'lora' }),
});
/** {@link RequestParams} with examples. */
export const RequestIdParams = RequestParams.extend({
  owner: RequestParams.shape.owner.meta({ example: 'fal-ai' }),
  app: RequestParams.shape.app.meta({ example: 'lora' }),
  requestId: RequestParams.shape.requestId.meta({ example: '024ca5b1-45d3-4afd-883e-ad3abe2a1c4d' }),
});

/** What the status routes (JSON and stream) read. */
export const statusRequest = { params: RequestIdParams, query: StatusQuery };

/** A submit's input: the model's input as a JSON object, judged by the handler with fal's error shapes. */
export const submitBody = {
  schema: SubmitBody.meta({
    description: "The model's input",
    example: { model_name: 'stabilityai/stable-diffusion-xl-base-1.0', prompt: 'Photo of a cute dog' },
  }),
  readBy: 'handler',
} as const;

/** What a submit reads besides its path. */
export const submitRequest = { query: SubmitQuery, headers: SubmitHeaders, body: submitBody };

/** The answers of a finished request's result (the result route and the synchronous run). */
export const finishedResult = {
  200: { description: "The model's output", schema: ModelOutput },
  400: {
    description: 'Still in progress (`detail`), or cancelled (`error_type: cancelled`)',
    schema: ErrorBody.or(ResultErrorBody),
  },
  422: {
    description: 'Invalid path or headers, or the model refused its input (`error_type: validation_error`)',
    schema: z.union([ValidationErrorBody, ResultErrorBody]),
  },
  500: { description: 'The runner failed (`runner_error`, `backend_not_configured`)', schema: ResultErrorBody },
  504: { description: 'The run timed out (`request_timeout`)', schema: ResultErrorBody },
} satisfies Record<number, ResponseDoc>;

/** The routes a submitted request's id opens, linked from the submit's answer (schemathesis follows them). */
export const requestLinks: ResponseDoc['links'] = Object.fromEntries(
  (
    [
      ['get', '/{owner}/{app}/requests/{requestId}/status'],
      ['get', '/{owner}/{app}/requests/{requestId}/status/stream'],
      ['get', '/{owner}/{app}/requests/{requestId}'],
      ['put', '/{owner}/{app}/requests/{requestId}/cancel'],
      ['get', '/{owner}/{app}/requests/{requestId}/webhook'],
      ['post', '/{owner}/{app}/requests/{requestId}/webhook/redeliver'],
    ] as const
  ).map(([method, path]) => {
    const operationId = operationIdOf({ method }, { path });
    return [
      operationId,
      {
        operationId,
        parameters: { owner: '$request.path.owner', app: '$request.path.app', requestId: '$response.body#/request_id' },
      },
    ];
  }),
);
