import type { Response } from 'express';
import { stringifyJson } from '../codec/json';
import type { RequestOutcome } from '../workflows/shared/request';

/**
 * Answers with a finished request's result, as `GET .../requests/{id}` and the synchronous run both
 * do: 200 with the model output, or the error's status with `{detail, error_type}` (422's `detail`
 * being pydantic's list). `x-fal-request-id` names the request either way.
 */
export function sendResult(res: Response, requestId: string, outcome: RequestOutcome): void {
  res.set('x-fal-request-id', requestId);
  // fal names the timeout that ended a request; `user` = the client's own x-fal-request-timeout.
  if (outcome.status === 'ERROR' && outcome.timeoutType) res.set('x-fal-request-timeout-type', outcome.timeoutType);
  // Written losslessly: integers past 2^53, -0 and long decimals leave as the backend wrote them.
  if (outcome.status === 'OK') res.type('application/json').send(stringifyJson(outcome.output));
  else res.status(outcome.httpStatus).json({ detail: outcome.detail, error_type: outcome.errorType });
}
