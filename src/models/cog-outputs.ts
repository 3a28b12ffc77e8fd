import { BackendError } from '../errors';
import type { StoredFile } from '../storage/file-store';
import { outputSchema, redact, type CogCall, type JsonSchema } from './cog-protocol';
import { decodeDataUri, outputFileName, saveOutputFile } from './output-files';
import type { ModelContext } from './types';

/**
 * Replaces the file outputs in a Cog output by files in our store: every data URI, and every http(s) URL
 * the model's OpenAPI `Output` schema marks `format: uri` (a `cog.Path` uploaded with `--upload-url`).
 */
export async function storeFileOutputs(output: unknown, call: CogCall, ctx: ModelContext): Promise<unknown> {
  const schema = containsHttpUrl(output) ? await outputSchema(call) : undefined;
  return convert(output, schema?.root, 'output');

  async function convert(value: unknown, node: JsonSchema | undefined, name: string): Promise<unknown> {
    const resolved = schema ? resolveRef(node, schema.components) : undefined;
    if (typeof value === 'string') return convertString(value, resolved, name);
    if (Array.isArray(value)) {
      const items = resolved?.items as JsonSchema | undefined;
      const out: unknown[] = [];
      for (const [i, item] of value.entries()) out.push(await convert(item, items, `${name}_${i}`));
      return out;
    }
    if (value && typeof value === 'object') {
      const properties = (resolved?.properties ?? {}) as Record<string, JsonSchema>;
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = await convert(item, properties[key], key);
      return out;
    }
    return value;
  }

  async function convertString(value: string, node: JsonSchema | undefined, name: string): Promise<unknown> {
    if (/^data:/i.test(value)) {
      const decoded = decodeDataUri(value);
      if (!decoded) return value;
      ctx.signal.throwIfAborted();
      return saveOutputFile(ctx, { ...decoded, fileName: outputFileName(name, decoded.contentType) });
    }
    if (/^https?:\/\//i.test(value) && node?.format === 'uri') return fetchAndStore(value, name);
    return value;
  }

  async function fetchAndStore(url: string, name: string): Promise<StoredFile> {
    let fetched;
    try {
      fetched = await ctx.fetchInput(url);
    } catch (err) {
      ctx.signal.throwIfAborted();
      throw new BackendError(`cannot fetch the Cog output file ${redact(url)}: ${(err as Error).message}`, true);
    }
    const contentType = fetched.contentType.split(';')[0]!.trim().toLowerCase();
    const baseName = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
    return saveOutputFile(ctx, {
      data: fetched.data,
      contentType,
      fileName: baseName || outputFileName(name, contentType),
    });
  }
}

function containsHttpUrl(value: unknown): boolean {
  if (typeof value === 'string') return /^https?:\/\//i.test(value);
  if (Array.isArray(value)) return value.some(containsHttpUrl);
  if (value && typeof value === 'object') return Object.values(value).some(containsHttpUrl);
  return false;
}

function resolveRef(node: JsonSchema | undefined, components: Record<string, JsonSchema>): JsonSchema | undefined {
  let current = node;
  for (let depth = 0; current && depth < 10; depth++) {
    if (typeof current.$ref === 'string') {
      current = components[current.$ref.replace('#/components/schemas/', '')];
    } else if (Array.isArray(current.allOf) && current.allOf.length === 1) {
      current = current.allOf[0] as JsonSchema;
    } else {
      return current;
    }
  }
  return current;
}
