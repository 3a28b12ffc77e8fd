import { z } from 'zod';
import { toPlainNumbers } from '../codec/json';
import { BackendNotConfiguredError } from '../errors';
import { ModelsFileError, type ModelDefinition, type ModelRegistry } from './registry';
import { MissingPeerError, requirePeers } from '../optional-peers';
import { builtinModels, builtinPeers, type BuiltinHooks } from './builtin';
import { createCogBackend } from './cog-backend';
import { CogWebhookReceiver, type CogWebhookOptions } from './cog-webhooks';
import { createHttpBackend } from './http-backend';
import { parseInput } from './input-validation';
import type { ModelRunner } from './types';

/** What some backend kinds need from the process that runs them. */
export interface RunnerOptions {
  /** Where `cog` backends receive Cog's log webhooks. @default listen on 127.0.0.1, any free port */
  cogWebhook?: CogWebhookOptions;
  /** Code-only hooks of built-in models (tests hold a run at a known point); none in production. */
  builtinHooks?: BuiltinHooks;
}

/**
 * Builds the runner of every model in the registry, failing at start (not at the first request)
 * when a definition names an unknown built-in or gives it bad options. Models of kind `temporal`
 * get none: an external worker runs them.
 */
export function createModelRunners(registry: ModelRegistry, options: RunnerOptions = {}): Map<string, ModelRunner> {
  const cogWebhooks = new CogWebhookReceiver(options.cogWebhook ?? { host: '127.0.0.1', port: 0 });
  return new Map(
    registry
      .list()
      .filter((def) => def.backend.kind !== 'temporal')
      .map((def) => [def.id, createModelRunner(def, cogWebhooks, options.builtinHooks)]),
  );
}

export function createModelRunner(
  def: ModelDefinition,
  cogWebhooks?: CogWebhookReceiver,
  builtinHooks: BuiltinHooks = {},
): ModelRunner {
  const runner = backendRunner(
    def,
    cogWebhooks ?? new CogWebhookReceiver({ host: '127.0.0.1', port: 0 }),
    builtinHooks,
  );
  if (!def.inputSchema) return runner;
  const schema = inputSchemaOf(def);
  return {
    run: (input, ctx) => {
      const plain = toPlainNumbers(input);
      if (plain === input) return runner.run(parseInput(schema, input), ctx);
      // Numbers a double cannot hold are checked by their value, but the backend gets their exact text.
      parseInput(schema, plain);
      return runner.run(input, ctx);
    },
  };
}

function backendRunner(def: ModelDefinition, cogWebhooks: CogWebhookReceiver, builtinHooks: BuiltinHooks): ModelRunner {
  const backend = def.backend;
  switch (backend.kind) {
    case 'http':
      return createHttpBackend(def.id, backend);
    case 'cog':
      return createCogBackend(def.id, backend, cogWebhooks);
    case 'temporal':
      // Never called: no worker of ours polls the task queue of a `temporal` model.
      return {
        run: () => {
          throw new BackendNotConfiguredError(`Model ${def.id} is run by an external Temporal worker, not by this one`);
        },
      };
    case 'builtin': {
      const factory = builtinModels[backend.name];
      if (!factory) {
        throw new ModelsFileError(
          `model "${def.id}", field "backend.name": unknown built-in "${backend.name}" ` +
            `(known: ${Object.keys(builtinModels).join(', ')})`,
        );
      }
      let builtin: ModelRunner;
      try {
        requirePeers(`model ${def.id}`, builtinPeers[backend.name] ?? []);
        builtin = factory(backend.options, builtinHooks);
      } catch (err) {
        // Already says which model and what to install.
        if (err instanceof MissingPeerError) throw err;
        throw new ModelsFileError(`model "${def.id}", field "backend.options": ${(err as Error).message}`);
      }
      // Built-in models compute with their inputs: they get plain numbers.
      return { run: (input, ctx) => builtin.run(toPlainNumbers(input), ctx) };
    }
  }
}

function inputSchemaOf(def: ModelDefinition): z.ZodType {
  try {
    return z.fromJSONSchema(def.inputSchema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (err) {
    throw new ModelsFileError(`model "${def.id}", field "inputSchema": not a usable JSON Schema (${String(err)})`);
  }
}
