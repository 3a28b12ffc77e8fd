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

/** An owner's share of a model's runs while others wait too; Temporal's fairness weight. */
export const OwnerWeights = z.record(z.string().min(1), z.number().positive().max(1000));
export type OwnerWeights = z.infer<typeof OwnerWeights>;

/**
 * The longest line an admission workflow may hold. Its state (about 92 bytes per waiting request) moves to the next
 * run as one payload, which Temporal caps at 2 MiB: 22,800 waiting requests would already exceed it.
 */
export const MAX_ADMISSION_WORKFLOW_QUEUE = 15_000;
/** A task queue's backlog is rows in Temporal's database; this bound only keeps a typo from meaning "no limit". */
const MAX_TASK_QUEUE_LENGTH = 10_000_000;

export const ModelDefinition = z
  .object({
    id: ModelId,
    backend: Backend,
    /**
     * Where this model's requests wait (docs/queue.md):
     * - `task-queue` (default): in the model's Temporal task queue. A submit costs one workflow start; `low` priority,
     *   fairness between owners and start timeouts are Temporal's own; the limit is the runners' slots
     *   (`runnerConcurrency` per runner process); positions are counted from visibility.
     * - `admission-workflow`: in one admission workflow per model, which holds `concurrency` exactly across all
     *   runners and numbers positions exactly, at the price of one history that every submit passes through.
     */
    queue: z.enum(['task-queue', 'admission-workflow']).default('task-queue'),
    /**
     * Runs of this model in progress at once. With `queue: "admission-workflow"` it is the limit across all runners;
     * with `task-queue` it is what each runner process takes on (unless `runnerConcurrency` says otherwise).
     * `"unlimited"`: no admission workflow, one run per runner process unless `runnerConcurrency` is set.
     */
    concurrency: z.union([z.number().int().positive(), z.literal('unlimited')]).default(1),
    /** Runs one runner process takes on at once; default: `concurrency` (1 when that is unlimited). */
    runnerConcurrency: z.number().int().positive().optional(),
    /**
     * Most requests that may wait in this model's queue; a submit beyond it is refused with 429. An admission
     * workflow carries its whole line in one payload, so it accepts at most {@link MAX_ADMISSION_WORKFLOW_QUEUE}.
     */
    maxQueueLength: z.number().int().positive().max(MAX_TASK_QUEUE_LENGTH).default(10_000),
    /**
     * Fairness weights of owners on this model's task queue (default 1 each): an owner of weight 2 gets twice the
     * starts of an owner of weight 1 while both have requests waiting. Overrides the file's `ownerWeights`.
     */
    ownerWeights: OwnerWeights.optional(),
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
    /** Fairness weights of owners on every model's task queue (default 1); a model's own `ownerWeights` win. */
    ownerWeights: OwnerWeights.optional(),
    models: z.array(ModelDefinition).min(1),
  })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    file.models.forEach((m, i) => {
      if (seen.has(m.id)) ctx.addIssue({ code: 'custom', path: ['models', i, 'id'], message: `duplicate id ${m.id}` });
      seen.add(m.id);
      if (m.queue === 'admission-workflow' && m.maxQueueLength > MAX_ADMISSION_WORKFLOW_QUEUE) {
        ctx.addIssue({
          code: 'custom',
          path: ['models', i, 'maxQueueLength'],
          message: `at most ${MAX_ADMISSION_WORKFLOW_QUEUE} with queue "admission-workflow" (its line is one payload); use queue "task-queue" for longer ones`,
        });
      }
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

/**
 * The limit the model's admission workflow holds across all runners, or undefined when its requests wait in the task
 * queue instead (the default, and every `"unlimited"` model).
 */
export function admissionLimit(model: ModelDefinition): number | undefined {
  return model.queue === 'admission-workflow' && model.concurrency !== 'unlimited' ? model.concurrency : undefined;
}

/** How many runs one runner process of the model takes on at once. */
export function runnerConcurrency(model: ModelDefinition): number {
  return model.runnerConcurrency ?? (model.concurrency === 'unlimited' ? 1 : model.concurrency);
}

/** The fairness weight of an owner's requests on a model (the model's `ownerWeights`, then the file's, then 1). */
export function ownerWeight(file: ModelsFile, model: ModelDefinition, owner: string): number {
  return model.ownerWeights?.[owner] ?? file.ownerWeights?.[owner] ?? 1;
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
