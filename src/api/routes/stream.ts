import type { Response } from 'express';
import type { RequestsClient, RequestView } from '../../client/requests';
import { stringifyJson } from '../../codec/json';
import { QueueStatus, type LogEntry } from '../../workflows/shared/request';
import { ownerOf } from '../auth';
import { StatusEvent } from '../response-schemas';
import { commonErrors, statusRequest } from '../route-docs';
import { routesWith } from '../route';
import { baseUrlOf, statusBody } from '../status-body';
import type { StatusWatchers } from '../status-watchers';
import { findRequest } from './queue';

export interface StreamRouteDeps {
  requests: RequestsClient;
  watchers: StatusWatchers;
  /** Longest silence on an open stream before a `: ping` comment (the official client gives up after 15 s). */
  streamKeepAliveMs: number;
  /** Base URL for the URLs we hand out; undefined = how this request reached us. */
  publicBaseUrl?: string;
}

const route = routesWith<StreamRouteDeps>();

/**
 * `GET /{owner}/{app}/requests/{id}/status/stream?logs=0|1`: Server-Sent Events, one `data:` event
 * per change of the status body, carrying only the log lines not sent before (the official client
 * accumulates them), a keep-alive comment in between, and the end of the stream after COMPLETED.
 */
export const streamRoutes = [
  route({
    method: 'get',
    route: '/:owner/:app/requests/:requestId/status/stream',
    summary: "A request's status as Server-Sent Events, until it is COMPLETED",
    tags: ['queue'],
    auth: true,
    request: statusRequest,
    responses: {
      200: {
        description: 'One `data:` event (a status body) per change, with the log lines not sent before',
        schema: StatusEvent,
        contentType: 'text/event-stream',
      },
      ...commonErrors(401, 404, 422, 503),
    },
    async handle({ deps, req, res, params, query }) {
      // Unknown requests get the usual JSON 404, before anything is streamed.
      const view = await findRequest(deps.requests, params, res, {}, { logs: query.logs });
      const feed = new StatusFeed(baseUrlOf(req, deps.publicBaseUrl), query.logs);
      const stream = openEventStream(res, deps.streamKeepAliveMs, { 'x-fal-request-id': view.requestId });

      const push = (current: RequestView) => {
        const body = feed.next(current);
        if (body) stream.send(body);
        if (current.status === QueueStatus.Completed) stream.end();
      };
      push(view);
      if (stream.ended) return;
      const unwatch = deps.watchers.watch(view.requestId, ownerOf(res), { logs: query.logs }, (event) => {
        if (event.type === 'view') push(event.view);
        else stream.end();
      });
      stream.onClose(unwatch);
    },
  }),
];

/**
 * Turns successive states of one request into the events of one stream: a state is sent only when
 * its body differs from the last one sent, with the log lines that are new since then.
 */
class StatusFeed {
  private lastBody?: string;
  private lastLog?: string;

  constructor(
    private readonly base: string,
    private readonly withLogs: boolean,
  ) {}

  /** The body to send for this state, or undefined when nothing changed. */
  next(view: RequestView): Record<string, unknown> | undefined {
    const body = statusBody(view, this.base, this.withLogs);
    const logs = this.newLogs(Array.isArray(body.logs) ? (body.logs as LogEntry[]) : []);
    const { logs: _all, ...rest } = body;
    const serialised = JSON.stringify(rest);
    if (serialised === this.lastBody && logs.length === 0) return undefined;
    this.lastBody = serialised;
    return { ...rest, logs };
  }

  /**
   * Lines after the last one sent. The runner's log only grows at the end (older lines may fall off
   * the front), so the last line sent marks where the new ones begin.
   */
  private newLogs(all: LogEntry[]): LogEntry[] {
    const keys = all.map((entry) => JSON.stringify(entry));
    const seen = this.lastLog === undefined ? -1 : keys.lastIndexOf(this.lastLog);
    const fresh = all.slice(seen + 1);
    if (fresh.length > 0) this.lastLog = keys[keys.length - 1];
    return fresh;
  }
}

interface EventStream {
  send(data: unknown): void;
  end(): void;
  readonly ended: boolean;
  onClose(fn: () => void): void;
}

/**
 * The few lines of SSE framing the status stream needs: headers, `data:` events, `: ping` comments
 * while idle, and cleanup when either side closes.
 */
function openEventStream(res: Response, keepAliveMs: number, headers: Record<string, string>): EventStream {
  res.status(200).set({
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    // Tells nginx-style proxies not to buffer the stream.
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  const closers: (() => void)[] = [];
  let ended = false;
  let ping = setInterval(() => res.write(': ping\n\n'), keepAliveMs);
  const finish = () => {
    if (ended) return;
    ended = true;
    clearInterval(ping);
    for (const fn of closers.splice(0)) fn();
  };
  res.on('close', finish);
  return {
    send(data) {
      if (ended) return;
      res.write(`data: ${stringifyJson(data)}\n\n`);
      // Any event proves the stream alive; the next ping is due a full interval later.
      clearInterval(ping);
      ping = setInterval(() => res.write(': ping\n\n'), keepAliveMs);
    },
    end() {
      if (ended) return;
      finish();
      res.end();
    },
    get ended() {
      return ended;
    },
    onClose(fn) {
      if (ended) fn();
      else closers.push(fn);
    },
  };
}
