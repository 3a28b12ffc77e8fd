import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelRegistry, ModelsFileError } from '../../src/models/registry';
import { createModelRunners } from '../../src/models/runners';

describe('the models file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'models-'));
  const write = (name: string, content: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };

  it('loads the shipped models.json, reading the HTTP backend URL from the environment', () => {
    const registry = ModelRegistry.load(join(__dirname, '../../models.json'), {
      LORA_BACKEND_URL: 'http://gpu-box:9000/run',
    });
    expect(registry.legacySubmitModel).toBe('fal-ai/lora');
    expect(registry.get('fal-ai/lora')?.backend).toMatchObject({ kind: 'http', url: 'http://gpu-box:9000/run' });
    expect(registry.get('fal-ai/esrgan')?.backend).toMatchObject({ kind: 'builtin', name: 'esrgan' });
    expect(() => createModelRunners(registry)).not.toThrow();
  });

  it('treats an unset ${VAR} as "no backend configured yet" rather than an error', () => {
    const registry = ModelRegistry.load(join(__dirname, '../../models.json'), {});
    expect(registry.get('fal-ai/lora')?.backend).toMatchObject({ kind: 'http', url: '' });
  });

  it('names the file, the model and the field when a definition is wrong', () => {
    const path = write('bad.json', {
      models: [{ id: 'acme/ok', backend: { kind: 'http', url: 'http://x' }, concurrency: 0 }],
    });
    expect(() => ModelRegistry.load(path, {})).toThrow(ModelsFileError);
    expect(() => ModelRegistry.load(path, {})).toThrow(`${path}: invalid models file`);
    expect(() => ModelRegistry.load(path, {})).toThrow(/model "acme\/ok", field "concurrency"/);
  });

  it('refuses malformed ids, unknown backend kinds, duplicate ids and a legacy model that is not listed', () => {
    const cases: [unknown, RegExp][] = [
      [{ models: [{ id: 'no-slash', backend: { kind: 'http' } }] }, /field "id": must look like owner\/app/],
      [{ models: [{ id: 'a/b', backend: { kind: 'grpc' } }] }, /model "a\/b", field "backend.kind"/],
      [
        {
          models: [
            { id: 'a/b', backend: { kind: 'http' } },
            { id: 'a/b', backend: { kind: 'http' } },
          ],
        },
        /duplicate id a\/b/,
      ],
      [
        { legacySubmitModel: 'a/c', models: [{ id: 'a/b', backend: { kind: 'http' } }] },
        /legacySubmitModel.*not one of/,
      ],
      [{ models: [{ id: 'a/b', backend: { kind: 'http' }, colour: 'red' }] }, /model "a\/b".*colour/],
      // Ids the submit route could never reach: a segment it refuses, or a path another route answers.
      [{ models: [{ id: 'acme/app/_hidden', backend: { kind: 'http' } }] }, /model "acme\/app\/_hidden".*segment/],
      [{ models: [{ id: 'acme/app/..', backend: { kind: 'http' } }] }, /segment/],
      [{ models: [{ id: 'run/app', backend: { kind: 'http' } }] }, /answered by another route/],
      [{ models: [{ id: 'storage/upload/initiate', backend: { kind: 'http' } }] }, /answered by another route/],
    ];
    for (const [content, message] of cases) {
      expect(() => ModelRegistry.fromObject(content, 'models.json')).toThrow(message);
    }
  });

  it('says so when the file is missing or not JSON', () => {
    expect(() => ModelRegistry.load(join(dir, 'missing.json'), {})).toThrow(/cannot read the models file.*MODELS_FILE/);
    expect(() => ModelRegistry.load(write('broken.json', '{"models": ['), {})).toThrow(/not valid JSON/);
  });

  it('fails at start, not at the first request, for an unknown built-in or bad built-in options', () => {
    const unknown = ModelRegistry.fromObject({ models: [{ id: 'a/b', backend: { kind: 'builtin', name: 'dalle' } }] });
    expect(() => createModelRunners(unknown)).toThrow(/model "a\/b", field "backend.name": unknown built-in "dalle"/);
    const badOptions = ModelRegistry.fromObject({
      models: [{ id: 'a/b', backend: { kind: 'builtin', name: 'esrgan', options: { maxInputPixels: -1 } } }],
    });
    expect(() => createModelRunners(badOptions)).toThrow(/model "a\/b", field "backend.options"/);
  });

  it('reads cog and temporal backends, naming the file, the model and the field when one is wrong', () => {
    const good = ModelRegistry.load(
      write('kinds.json', {
        models: [
          { id: 'acme/cog', backend: { kind: 'cog', url: '${COG_URL}', headers: { authorization: 'Bearer t' } } },
          { id: 'acme/py', backend: { kind: 'temporal' } },
        ],
      }),
      { COG_URL: 'http://gpu-box:5000' },
    );
    expect(good.get('acme/cog')?.backend).toEqual({
      kind: 'cog',
      url: 'http://gpu-box:5000',
      headers: { authorization: 'Bearer t' },
    });
    // An external worker runs a `temporal` model: no runner of ours is built for it.
    expect([...createModelRunners(good).keys()]).toEqual(['acme/cog']);

    const cases: [unknown, RegExp][] = [
      [{ models: [{ id: 'a/cog', backend: { kind: 'cog', url: 'ftp://x' } }] }, /model "a\/cog", field "backend.url"/],
      [
        { models: [{ id: 'a/cog', backend: { kind: 'cog', url: 'http://x', timeoutSecs: 5 } }] },
        /model "a\/cog", field "backend": .*timeoutSecs/,
      ],
      [
        { models: [{ id: 'a/py', backend: { kind: 'temporal', taskQueue: 'mine' } }] },
        /model "a\/py", field "backend": .*taskQueue/,
      ],
      [
        { models: [{ id: 'a/py', backend: { kind: 'temporal' }, inputSchema: { type: 'object' } }] },
        /model "a\/py", field "inputSchema": not supported with backend kind "temporal"/,
      ],
    ];
    for (const [content, message] of cases) {
      const path = write('bad-kind.json', content);
      expect(() => ModelRegistry.load(path, {})).toThrow(`${path}: invalid models file`);
      expect(() => ModelRegistry.load(path, {})).toThrow(message);
    }
  });
});
