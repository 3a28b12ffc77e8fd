# syntax=docker/dockerfile:1
# One image for the API, the control worker and model runners; the command picks the role
# (docker-compose.yml: `node dist/server.js` or `node dist/worker.js`).

# 1. Dependencies, dev ones included: the build needs TypeScript and webpack. (npm's `prepare` runs
#    scripts/build.mjs, which skips the build while src/ is not there yet.)
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/build.mjs ./scripts/
RUN npm ci --no-audit --no-fund

# 2. Compile to dist/ and prebuild the workflow bundle (dist/workflow-bundle.js).
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/bundle-workflows.ts ./scripts/
RUN npm run build

# 3. Production dependencies: ours, the Temporal SDK (a peer dependency of the package) and the optional
#    parts the default models file and /docs use, at the locked versions.
FROM node:20-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/image-manifest.mjs ./scripts/
RUN node scripts/image-manifest.mjs && npm install --omit=dev --no-audit --no-fund

# 4. Runtime: compiled code, production dependencies, the models file. No compiler, no sources.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    MODELS_FILE=/app/models.json \
    WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json models.json ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# 8080: the API (PORT); 9464: a worker's /metrics and /healthz (METRICS_PORT).
EXPOSE 8080 9464
CMD ["node", "dist/server.js"]
