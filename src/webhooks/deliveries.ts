import {
  CancelledFailure,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { fromRawPayload } from '../codec';
import {
  INFERENCE_REQUEST_WORKFLOW_TYPE,
  outcomeOf,
  type InferenceRequestInput,
  type RequestResult,
} from '../workflows/inference-request/messages';
import { cancelledOutcome } from '../workflows/inference-request/outcomes';
import type { WebhookBody } from '../workflows/shared/request';
import { deliveryInputFor } from '../workflows/webhook-delivery/delivery';
import {
  DELIVERY_MEMO_KEY,
  DeliveryState,
  WEBHOOK_DELIVERY_WORKFLOW_TYPE,
  initialDeliveryMemo,
  redeliverSignal,
  webhookWorkflowId,
  type DeliveryReport,
  type RequestDeliveryMemo,
  type WebhookDeliveryInput,
} from '../workflows/webhook-delivery/messages';

/** A run of a delivery workflow; without `runId`, the latest. */
export interface DeliveryExecutionRef {
  workflowId: string;
  runId?: string;
}

/**
 * Reads the input a delivery run was started with from the first event of its history: no worker
 * needed, and the body (up to the payload limit) is stored once instead of with every attempt.
 */
export async function readDeliveryInput(
  client: Client,
  execution: DeliveryExecutionRef,
): Promise<WebhookDeliveryInput> {
  return readStartInput<WebhookDeliveryInput>(client, execution);
}

/** The (first) argument a workflow run was started with, from the first event of its history. */
async function readStartInput<T>(client: Client, execution: DeliveryExecutionRef): Promise<T> {
  const { history } = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution,
    maximumPageSize: 1,
  });
  const payload = history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`the history of ${execution.workflowId} has no start event with an input`);
  // Read raw from history, so the codecs (claim check, decryption) are ours to run.
  return fromRawPayload<T>(client.options.loadedDataConverter, payload);
}

/** {@link readDeliveryInput}, narrowed to what an attempt needs. */
export async function readDeliveryBody(client: Client, execution: DeliveryExecutionRef): Promise<WebhookBody> {
  return (await readDeliveryInput(client, execution)).body;
}

export interface WebhookDeliveriesOptions {
  /** The control task queue, where delivery workflows run. */
  taskQueue: string;
  /** Timeout of a redelivery attempt. */
  attemptTimeoutMs: number;
}

/**
 * Where a request's delivery log is: in its delivery workflow, or (the first attempt settled it) in the request's
 * result or, for requests of older APIs and cancelled ones, in its memo.
 */
type LogSource =
  | { kind: 'delivery'; description: WorkflowExecutionDescription; report: DeliveryReport }
  | { kind: 'request'; runId: string; report: DeliveryReport }
  /** The request handed its delivery over and the delivery workflow is being started. */
  | { kind: 'starting' };

/**
 * The delivery log and redelivery, from the API's side. The log is a workflow's memo, read with
 * `describe`: the same call answers while the delivery retries and long after it closed, with no
 * worker running. {@link source} is the one place that knows where it is.
 */
export class WebhookDeliveries {
  constructor(
    private readonly client: Client,
    private readonly options: WebhookDeliveriesOptions,
  ) {}

  /** The request's delivery log, or undefined when it has no webhook delivery (yet). */
  async log(requestId: string): Promise<DeliveryReport | undefined> {
    const source = await this.source(requestId);
    return source && source.kind !== 'starting' ? source.report : undefined;
  }

  /**
   * Sends the webhook again now. A delivery still retrying gets a signal (the attempt comes first,
   * the schedule goes on if it fails); a closed one gets a new run under the same workflow id, which
   * carries the log on. Returns undefined when the request has no delivery to repeat.
   */
  async redeliver(requestId: string): Promise<DeliveryReport | undefined> {
    const workflowId = webhookWorkflowId(requestId);
    let source = await this.source(requestId);
    if (source?.kind === 'delivery' && source.description.status.name === 'RUNNING') {
      try {
        await this.client.workflow.getHandle(workflowId).signal(redeliverSignal);
        return source.report;
      } catch (err) {
        // It closed between the describe and the signal: start a new run below.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        source = await this.source(requestId);
      }
    }
    if (!source || source.kind === 'starting') return undefined;
    const previous = source.report;
    const original =
      source.kind === 'delivery'
        ? await readDeliveryInput(this.client, { workflowId, runId: source.description.runId })
        : await this.inputFromRequest(requestId, source.runId);
    const input: WebhookDeliveryInput = {
      requestId: original.requestId,
      owner: original.owner,
      url: original.url,
      body: original.body,
      scheduleMs: [],
      attemptTimeoutMs: this.options.attemptTimeoutMs,
      previousAttempts: previous.attempts,
      earlierAttempts: previous.earlierAttempts,
    };
    // Signal-with-start: if another redelivery started a run meanwhile, this only signals it.
    await this.client.workflow.signalWithStart(WEBHOOK_DELIVERY_WORKFLOW_TYPE, {
      workflowId,
      taskQueue: this.options.taskQueue,
      args: [input],
      signal: redeliverSignal,
      signalArgs: [],
      memo: initialDeliveryMemo(input.url, previous),
    });
    return { ...previous, state: DeliveryState.Retrying, nextAttemptAt: undefined };
  }

  /** Where the request's log is: its delivery workflow if it has one, else the request's own memo or result. */
  private async source(requestId: string): Promise<LogSource | undefined> {
    const delivery = await this.describe(webhookWorkflowId(requestId), WEBHOOK_DELIVERY_WORKFLOW_TYPE);
    if (delivery) return { kind: 'delivery', description: delivery, report: reportOf(delivery) };
    const request = await this.describe(requestId, INFERENCE_REQUEST_WORKFLOW_TYPE);
    if (!request) return undefined;
    const memo = request.memo?.[DELIVERY_MEMO_KEY] as RequestDeliveryMemo | undefined;
    if (memo) {
      // A first attempt that failed hands over to a delivery workflow in the same step: it is being started.
      if ('deliveryWorkflowId' in memo || memo.state === DeliveryState.Retrying) return { kind: 'starting' };
      return { kind: 'request', runId: request.runId, report: memo };
    }
    if (request.status.name !== 'COMPLETED') return undefined;
    const result = (await this.client.workflow.getHandle(requestId, request.runId).result()) as RequestResult;
    return result.webhookDelivery && { kind: 'request', runId: request.runId, report: result.webhookDelivery };
  }

  /** A delivery's input rebuilt from its request (the settings it was submitted with) and its outcome. */
  private async inputFromRequest(requestId: string, runId: string): Promise<WebhookDeliveryInput> {
    const request = await readStartInput<InferenceRequestInput>(this.client, { workflowId: requestId, runId });
    // A cancelled request ends its workflow as cancelled, after sending the cancelled outcome.
    const outcome = await this.client.workflow
      .getHandle(requestId, runId)
      .result()
      .then((result) => outcomeOf(result as RequestResult))
      .catch((err: unknown) => {
        if (err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure) return cancelledOutcome();
        throw err;
      });
    const input = deliveryInputFor(request, outcome);
    if (!input) throw new Error(`request ${requestId} has a delivery log but no webhook URL`);
    return input;
  }

  private async describe(workflowId: string, type: string): Promise<WorkflowExecutionDescription | undefined> {
    try {
      const description = await this.client.workflow.getHandle(workflowId).describe();
      return description.type === type ? description : undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }
}

function reportOf(description: WorkflowExecutionDescription): DeliveryReport {
  const memo = description.memo?.[DELIVERY_MEMO_KEY] as DeliveryReport | undefined;
  const report: DeliveryReport = memo ?? { url: '', state: DeliveryState.Retrying, attempts: [] };
  // A run that ended outside its own code (terminated, timed out) schedules nothing more.
  if (description.status.name !== 'RUNNING' && report.state === DeliveryState.Retrying) {
    return { ...report, state: DeliveryState.Exhausted, nextAttemptAt: undefined };
  }
  return report;
}
