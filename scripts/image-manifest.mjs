// Rewrites package.json for the Docker image's production install (run in a throwaway build stage):
// the image is the whole product, so the peers an embedding application would bring itself (the Temporal
// SDK) and the optional parts (TensorFlow.js for the built-in ESRGAN, Swagger UI) become dependencies,
// at the versions package-lock.json already holds. Plain Node with built-ins only.
import { readFileSync, writeFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
pkg.dependencies = { ...pkg.dependencies, ...pkg.peerDependencies };
for (const name of Object.keys(pkg.peerDependencies ?? {})) delete pkg.devDependencies?.[name];
delete pkg.peerDependencies;
delete pkg.peerDependenciesMeta;
// The stage has no sources to build.
delete pkg.scripts?.prepare;
writeFileSync('package.json', `${JSON.stringify(pkg, null, 2)}\n`);
