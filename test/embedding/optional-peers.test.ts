import { MissingPeerError, OptionalPeers, requirePeers } from '../../src/optional-peers';
import { createModelRunners } from '../../src/models/runners';
import { ModelRegistry } from '../../src/models/registry';
import { PEER_RANGES } from '../../src/version';

describe('optional peer dependencies', () => {
  const missing = (absent: string[]) => (name: string) => {
    if (absent.includes(name)) throw new Error(`Cannot find module '${name}'`);
    return `/node_modules/${name}/index.js`;
  };

  it('names the feature, every missing package and the npm install line with our stated ranges', () => {
    expect(() =>
      requirePeers('model fal-ai/esrgan', OptionalPeers.esrgan, missing(['@tensorflow/tfjs', 'pngjs'])),
    ).toThrow(
      `model fal-ai/esrgan needs @tensorflow/tfjs, pngjs: npm install @tensorflow/tfjs@${PEER_RANGES['@tensorflow/tfjs']} pngjs@${PEER_RANGES.pngjs}`,
    );
    expect(PEER_RANGES['@tensorflow/tfjs']).toMatch(/\d/);
    try {
      requirePeers('the /docs page', OptionalPeers.swaggerUi, missing(['swagger-ui-dist']));
    } catch (err) {
      expect(err).toMatchObject({
        name: MissingPeerError.name,
        feature: 'the /docs page',
        missing: ['swagger-ui-dist'],
      });
    }
    expect.assertions(3);
  });

  it('passes when every package resolves', () => {
    expect(() => requirePeers('model fal-ai/esrgan', OptionalPeers.esrgan, missing([]))).not.toThrow();
  });

  it('builds the built-in ESRGAN runner where its peers are installed (this repository, for npm start)', () => {
    const registry = ModelRegistry.fromObject({
      models: [{ id: 'fal-ai/esrgan', backend: { kind: 'builtin', name: 'esrgan' } }],
    });
    expect(createModelRunners(registry).get('fal-ai/esrgan')).toEqual({ run: expect.any(Function) });
  });
});
