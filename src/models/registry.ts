import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** One segment of a model id, as the submit route's path accepts it (`src/api/schemas.ts` uses this too). */
export const MODEL_ID_SEGMENT = /^[A-Za-z0-9][\w.-]*$/;

/**
 * Ids whose submit URL another route answers first, so their requests could never be submitted:
 * the synchronous run (`/run/...`), the storage API and the legacy gateway submit.
 */
const SHADOWED_ID = /^(run\/.*|storage\/upload\/initiate(-multipart)?|fal\/queue\/submit)$/;

/** `owner/app[/path...]`, fal's model id: every segment one the submit route accepts. */
const ModelId = z
  .string()
  .refine(
    (id) => id.split('/').length >= 2 && id.split('/').every((segment) => MODEL_ID_SEGMENT.test(segment)),
    'must look like owner/app or owner/app/path, each segment a letter or digit followed by letters, digits, _ . -',
  )
  .refine(
    (id) => !SHADOWED_ID.test(id),
    'is answered by another route (run/..., storage/upload/..., fal/queue/submit)',
  );

export const BuiltinBackend = z.object({
  kind: z.literal('builtin'),
  /** Name of a built-in model (see `src/models/builtin`). */
  name: z.string().min(1),
  /** Options passed to the built-in model's factory. */
  options: z.record(z.string(), z.unknown()).default({}),
});

/** A model server's URL; empty (e.g. an unset `${VAR}`) = not configured yet. */
const ServerUrl = z.union([z.url({ protocol: /^https?$/ }), z.literal('')]).default('');
/** Sent with every call to the model server (a proxy's auth, for instance). */
const ServerHeaders = z.record(z.string(), z.string()).default({});

export const HttpBackend = z.object({
  kind: z.literal('http'),
  /** Where the input is POSTed as JSON. */
  url: ServerUrl,
  headers: ServerHeaders,
  /** Per-call timeout of the backend request. */
  timeoutSeconds: z.number().positive().default(600),
});
export type HttpBackend = z.infer<typeof HttpBackend>;
export type BuiltinBackend = z.infer<typeof BuiltinBackend>;

/** A Cog predictor's HTTP server (`cog predict`'s container, or `python -m cog.server.http`). */
export const CogBackend = z
  .object({
    kind: z.literal('cog'),
    /** Base URL of the Cog server (`/predictions` is appended). */
    url: ServerUrl,
    headers: ServerHeaders,
  })
  .strict();
export type CogBackend = z.infer<typeof CogBackend>;

/**
 * The model runs in an external Temporal worker (any SDK language) polling the model's task queue and
 * implementing the `runInference` activity; our own workers leave that queue alone.
 */
export const TemporalBackend = z.object({ kind: z.literal('temporal') }).strict();
export type TemporalBackend = z.infer<typeof TemporalBackend>;

export const Backend = z.discriminatedUnion('kind', [BuiltinBackend, HttpBackend, CogBackend, TemporalBackend]);
export type Backend = z.infer<typeof Backend>;

export const ModelDefinition = z
  .object({
    id: ModelId,
    backend: Backend,
    /**
     * Runs of this model in progress at once across all its runners: the limit queue positions, priorities and
     * start timeouts are computed against. `"unlimited"` skips the admission queue (runners cap their own runs).
     */
    concurrency: z.union([z.number().int().positive(), z.literal('unlimited')]).default(1),
    /** Runs one runner process takes on at once; default: `concurrency` (1 when that is unlimited). */
    runnerConcurrency: z.number().int().positive().optional(),
    /** Most requests that may wait in this model's queue; a submit beyond it is refused with 429. */
    maxQueueLength: z.number().int().positive().max(25_000).default(10_000),
    /** Longest a single run may take before it is retried. */
    timeoutSeconds: z.number().positive().default(600),
    /** A runner silent for this long is presumed dead and its run is retried elsewhere. */
    heartbeatTimeoutSeconds: z.number().positive().default(30),
    /** Attempts at a run that fails in a retryable way (5xx, connection error, crashed runner). */
    maxAttempts: z.number().int().positive().default(3),
    /** Optional JSON Schema the input must satisfy; checked by the runner, so a bad body ends as a 422 ERROR. */
    inputSchema: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type ModelDefinition = z.infer<typeof ModelDefinition>;

export const ModelsFile = z
  .object({
    /** Model that the seed's legacy `POST /fal/queue/submit` route runs (`model_name` goes in its body). */
    legacySubmitModel: ModelId.optional(),
    models: z.array(ModelDefinition).min(1),
  })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    file.models.forEach((m, i) => {
      if (seen.has(m.id)) ctx.addIssue({ code: 'custom', path: ['models', i, 'id'], message: `duplicate id ${m.id}` });
      seen.add(m.id);
      if (m.backend.kind === 'temporal' && m.inputSchema) {
        // Our runners check inputSchema; an external runner never sees it, so it would silently not apply.
        ctx.addIssue({
          code: 'custom',
          path: ['models', i, 'inputSchema'],
          message: 'not supported with backend kind "temporal": the external runner validates its own input',
        });
      }
    });
    if (file.legacySubmitModel && !seen.has(file.legacySubmitModel)) {
      ctx.addIssue({
        code: 'custom',
        path: ['legacySubmitModel'],
        message: `${file.legacySubmitModel} is not one of the models`,
      });
    }
  });
export type ModelsFile = z.infer<typeof ModelsFile>;

/** A models file that cannot be used; the message names the file, the model and the field. */
export class ModelsFileError extends Error {
  override name = 'ModelsFileError';
}

/** The models this deployment serves, by id. */
export class ModelRegistry {
  private readonly byId: ReadonlyMap<string, ModelDefinition>;

  constructor(readonly file: ModelsFile) {
    this.byId = new Map(file.models.map((m) => [m.id, m]));
  }

  get(id: string): ModelDefinition | undefined {
    return this.byId.get(id);
  }

  list(): ModelDefinition[] {
    return [...this.byId.values()];
  }

  get legacySubmitModel(): string | undefined {
    return this.file.legacySubmitModel;
  }

  /** Builds a registry from a plain object (tests, embedding), with the same validation as a file. */
  static fromObject(raw: unknown, source = '<object>'): ModelRegistry {
    const parsed = ModelsFile.safeParse(raw);
    if (!parsed.success) throw new ModelsFileError(describeIssues(source, raw, parsed.error));
    return new ModelRegistry(parsed.data);
  }

  /** Reads and validates a models file; `${VAR}` in strings is replaced from `env` (unset = empty). */
  static load(path: string, env: NodeJS.ProcessEnv): ModelRegistry {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ModelsFileError(`${path}: cannot read the models file (${(err as Error).message}); set MODELS_FILE`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ModelsFileError(`${path}: not valid JSON (${(err as Error).message})`);
    }
    return ModelRegistry.fromObject(interpolateEnv(raw, env), path);
  }
}

/** The model's concurrency limit across all runners, or undefined when it has none (no admission queue). */
export function concurrencyLimit(model: ModelDefinition): number | undefined {
  return model.concurrency === 'unlimited' ? undefined : model.concurrency;
}

/** How many runs one runner process of the model takes on at once. */
export function runnerConcurrency(model: ModelDefinition): number {
  return model.runnerConcurrency ?? concurrencyLimit(model) ?? 1;
}

/** The task queue a model's runs are dispatched on; runners for the model poll it. */
export function modelTaskQueue(baseTaskQueue: string, modelId: string): string {
  return `${baseTaskQueue}:model:${modelId}`;
}

function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') return value.replace(/\$\{([A-Z0-9_]+)\}/gi, (_, name: string) => env[name] ?? '');
  if (Array.isArray(value)) return value.map((v) => interpolateEnv(v, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env)]));
  }
  return value;
}

function describeIssues(source: string, raw: unknown, error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const [first, index, ...rest] = issue.path;
    if (first === 'models' && typeof index === 'number') {
      const id = (raw as { models?: { id?: unknown }[] }).models?.[index]?.id;
      const model = typeof id === 'string' ? `model "${id}"` : `models[${index}]`;
      return `  ${model}, field "${rest.join('.') || '(entry)'}": ${issue.message}`;
    }
    return `  field "${issue.path.join('.') || '(root)'}": ${issue.message}`;
  });
  return `${source}: invalid models file\n${lines.join('\n')}`;
}
