import { z } from 'zod';
import { ModelsFileError, type ModelDefinition, type ModelRegistry } from './registry';
import { builtinModels } from './builtin';
import { createHttpBackend } from './http-backend';
import { parseInput } from './input-validation';
import type { ModelRunner } from './types';

/**
 * Builds the runner of every model in the registry, failing at start (not at the first request)
 * when a definition names an unknown built-in or gives it bad options.
 */
export function createModelRunners(registry: ModelRegistry): Map<string, ModelRunner> {
  return new Map(registry.list().map((def) => [def.id, createModelRunner(def)]));
}

export function createModelRunner(def: ModelDefinition): ModelRunner {
  const runner = backendRunner(def);
  if (!def.inputSchema) return runner;
  const schema = inputSchemaOf(def);
  return {
    run: (input, ctx) => runner.run(parseInput(schema, input), ctx),
  };
}

function backendRunner(def: ModelDefinition): ModelRunner {
  const backend = def.backend;
  switch (backend.kind) {
    case 'http':
      return createHttpBackend(def.id, backend);
    case 'builtin': {
      const factory = builtinModels[backend.name];
      if (!factory) {
        throw new ModelsFileError(
          `model "${def.id}", field "backend.name": unknown built-in "${backend.name}" ` +
            `(known: ${Object.keys(builtinModels).join(', ')})`,
        );
      }
      try {
        return factory(backend.options);
      } catch (err) {
        throw new ModelsFileError(`model "${def.id}", field "backend.options": ${(err as Error).message}`);
      }
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
