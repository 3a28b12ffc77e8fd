import {
  CancelledFailure,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { webhookBodyFor, type WebhookBody } from '../domain/request';
import { cancelledOutcome, inferenceRequest, type InferenceRequestInput } from '../workflows/inference-request';
import { DEFAULT_MAX_PAYLOAD_BYTES, fitWebhookBody } from './payload';
import {
  DELIVERY_MEMO_KEY,
  DeliveryState,
  initialDeliveryMemo,
  redeliverSignal,
  webhookDelivery,
  webhookWorkflowId,
  type DeliveryReport,
  type WebhookDeliveryInput,
} from '../workflows/webhook-delivery';

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
  // Through the codecs too: a large input is a claim-check reference in history.
  return decodeFromPayloadsAtIndex<T>(client.options.loadedDataConverter, 0, [payload]);
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
 * The delivery log and redelivery, from the API's side. The log is the workflow's memo, read with
 * `describe`: the same call answers while the delivery retries and long after it closed, with no
 * worker running.
 */
export class WebhookDeliveries {
  constructor(
    private readonly client: Client,
    private readonly options: WebhookDeliveriesOptions,
  ) {}

  /** The request's delivery log, or undefined when it has no webhook delivery (yet). */
  async log(requestId: string): Promise<DeliveryReport | undefined> {
    const description = await this.describe(requestId);
    return description ? reportOf(description) : (await this.firstAttemptReport(requestId))?.report;
  }

  /**
   * Sends the webhook again now. A delivery still retrying gets a signal (the attempt comes first,
   * the schedule goes on if it fails); a closed one gets a new run under the same workflow id, which
   * carries the log on. Returns undefined when the request has no delivery to repeat.
   */
  async redeliver(requestId: string): Promise<DeliveryReport | undefined> {
    const workflowId = webhookWorkflowId(requestId);
    let description = await this.describe(requestId);
    if (description?.status.name === 'RUNNING') {
      try {
        await this.client.workflow.getHandle(workflowId).signal(redeliverSignal);
        return reportOf(description);
      } catch (err) {
        // It closed between the describe and the signal: start a new run below.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        description = await this.describe(requestId);
      }
    }
    let previous: DeliveryReport;
    let original: WebhookDeliveryInput;
    if (description) {
      previous = reportOf(description);
      const {
        previousAttempts: _log,
        firstAttemptAt: _due,
        resultAt: _at,
        ...input
      } = await readDeliveryInput(this.client, { workflowId, runId: description.runId });
      original = input;
    } else {
      // No delivery workflow: the request's own first attempt settled the delivery, or there was none.
      const first = await this.firstAttemptReport(requestId);
      // A first attempt that failed hands over to a delivery workflow in the same step: it is being started.
      if (!first || first.report.state === DeliveryState.Retrying) return undefined;
      previous = first.report;
      original = await this.inputFromRequest(requestId, first.runId);
    }
    // Signal-with-start: if another redelivery started a run meanwhile, this only signals it.
    await this.client.workflow.signalWithStart(webhookDelivery, {
      workflowId,
      taskQueue: this.options.taskQueue,
      args: [
        {
          ...original,
          scheduleMs: [],
          attemptTimeoutMs: this.options.attemptTimeoutMs,
          previousAttempts: previous.attempts,
        },
      ],
      signal: redeliverSignal,
      signalArgs: [],
      memo: initialDeliveryMemo(original.url, previous.attempts),
    });
    return { ...previous, state: DeliveryState.Retrying, nextAttemptAt: undefined };
  }

  /** The log of the first attempt, which the request workflow made itself and keeps in its memo. */
  private async firstAttemptReport(requestId: string): Promise<{ report: DeliveryReport; runId: string } | undefined> {
    try {
      const description = await this.client.workflow.getHandle(requestId).describe();
      const report = description.memo?.[DELIVERY_MEMO_KEY] as DeliveryReport | undefined;
      return description.type === inferenceRequest.name && report ? { report, runId: description.runId } : undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** A delivery's input rebuilt from its request: the webhook settings it was submitted with, and its outcome. */
  private async inputFromRequest(requestId: string, runId: string): Promise<WebhookDeliveryInput> {
    const request = await readStartInput<InferenceRequestInput>(this.client, { workflowId: requestId, runId });
    if (!request.webhookUrl) throw new Error(`request ${requestId} has a delivery log but no webhook URL`);
    // A cancelled request ends its workflow as cancelled, after sending the cancelled outcome.
    const outcome = await this.client.workflow
      .getHandle<typeof inferenceRequest>(requestId, runId)
      .result()
      .catch((err: unknown) => {
        if (err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure) return cancelledOutcome();
        throw err;
      });
    const { scheduleMs, attemptTimeoutMs, maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES } = request.webhook;
    return {
      requestId,
      owner: request.owner,
      url: request.webhookUrl,
      body: fitWebhookBody(webhookBodyFor(requestId, outcome), maxPayloadBytes),
      scheduleMs,
      attemptTimeoutMs,
    };
  }

  private async describe(requestId: string): Promise<WorkflowExecutionDescription | undefined> {
    try {
      const description = await this.client.workflow.getHandle(webhookWorkflowId(requestId)).describe();
      return description.type === webhookDelivery.name ? description : undefined;
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
